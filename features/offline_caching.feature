@edgehub @offline
Feature: Offline store and forward
  An IoT Edge device keeps working while its connection to IoT Hub is down: edgeHub goes on
  accepting what modules and leaf devices send, keeps it in its store, and forwards it once
  the connection is back, each sender's messages in the order it sent them. Twin updates
  wait the same way: desired properties changed in the cloud meanwhile reach the module
  after the reconnection, and reported properties set offline reach IoT Hub. A message older
  than the store's time-to-live (storeAndForwardConfiguration.timeToLiveSecs) is dropped,
  not delivered late. Outpost also caps the store in bytes (storeLimits.maxSizeBytes); when
  it is full, edgeHub refuses new messages (reject-new: the publisher gets no PUBACK and
  sends again later) or drops the oldest ones (drop-oldest), as the device's store policy
  says (EDGEHUB_STORE_FULL_POLICY in edgeHub's env). IoT Hub refusing the device's
  credentials is an outage like any other: edgeHub retries with back-off and keeps storing.

  edgeHub is Outpost's edge hub, deployed by the edge agent as the edgeHub system module (a
  FROM scratch image on Docker, the binary on the process runtime). IoT Hub is the fake
  hub, whose network to the device the scenarios cut and restore: a cut drops every
  connection of the device and refuses new ones. The modules and leaf devices are programs
  of the test built on Outpost's device SDK, each with its own identity in IoT Hub. Every
  message carries its sender's sequence number, so that order, loss and repeats show.

  Background:
    Given an IoT Edge device with a running edge agent
    And edgeHub is Outpost's edge hub
    And edgeHub routes every message to IoT Hub

  Scenario: Messages sent while the network is down reach IoT Hub when it returns, in order per sender
    Given the deployment is applied and edgeHub is connected to IoT Hub
    And modules "sensorA" and "sensorB" and leaf device "leaf1" are connected to edgeHub
    And "sensorA", "sensorB" and "leaf1" each send a message every 50ms
    When the network between the device and IoT Hub is cut
    Then for 2 seconds edgeHub keeps accepting their messages and IoT Hub receives none
    When the network is restored
    And "sensorA", "sensorB" and "leaf1" stop sending
    Then IoT Hub receives every message of "sensorA", "sensorB" and "leaf1" in the order each sent them

  Scenario: Messages stored before edgeHub restarts while offline are still delivered
    Given the deployment is applied and edgeHub is connected to IoT Hub
    And module "sensor" and leaf device "leaf1" are connected to edgeHub
    When the network between the device and IoT Hub is cut
    And "sensor" and "leaf1" each send 10 messages
    And edgeHub is restarted
    And "sensor" and "leaf1" each send 10 messages
    And the network is restored
    Then IoT Hub receives every message of "sensor" and "leaf1" in the order each sent them

  Scenario: While IoT Hub refuses the device's credentials, messages wait in the store
    Given the deployment is applied and edgeHub is connected to IoT Hub
    And module "sensor" is connected to edgeHub
    When IoT Hub drops the device's connections and refuses new ones as not authorized
    And "sensor" sends 5 messages
    Then IoT Hub receives nothing from the device for 2 seconds
    When IoT Hub accepts the device's connections again
    And "sensor" sends 5 messages
    Then IoT Hub receives every message of "sensor" in the order each sent them

  Scenario: Messages older than the time-to-live are dropped, not delivered late
    Given the store keeps messages for 2 seconds
    And the deployment is applied and edgeHub is connected to IoT Hub
    And module "sensor" is connected to edgeHub
    When the network between the device and IoT Hub is cut
    And "sensor" sends 5 messages
    And IoT Hub receives nothing from the device for 3 seconds
    And the network is restored
    And "sensor" sends 5 messages
    Then IoT Hub receives messages 6 to 10 of "sensor", in order, and none of 1 to 5

  Scenario: A full store refuses new messages under the reject-new policy
    Given the store is capped at 6000 bytes and refuses new messages when full
    And the deployment is applied and edgeHub is connected to IoT Hub
    And module "sensor" is connected to edgeHub
    When the network between the device and IoT Hub is cut
    And "sensor" sends messages of 1000 bytes until edgeHub refuses one
    Then edgeHub accepted at least 2 messages of "sensor" before refusing one
    When the network is restored
    Then IoT Hub receives exactly the messages edgeHub accepted from "sensor", in order
    And "sensor" can send messages again

  Scenario: A full store drops the oldest messages under the drop-oldest policy
    Given the store is capped at 6000 bytes and drops the oldest messages when full
    And the deployment is applied and edgeHub is connected to IoT Hub
    And module "sensor" is connected to edgeHub
    When the network between the device and IoT Hub is cut
    And "sensor" sends 15 messages of 1000 bytes
    And the network is restored
    Then IoT Hub receives the newest messages of "sensor", in order up to the last one, and not the oldest

  Scenario: Desired properties changed while the device is offline reach the module after the reconnection
    Given the deployment is applied and edgeHub is connected to IoT Hub
    And module "thermostat" is connected to edgeHub
    When the network between the device and IoT Hub is cut
    And the solution sets the desired property "setPoint" of "thermostat" to 21.5
    And the network is restored
    Then "thermostat" receives the desired property "setPoint" = 21.5

  Scenario: Reported properties set while the device is offline reach IoT Hub after the reconnection
    Given the deployment is applied and edgeHub is connected to IoT Hub
    And module "thermostat" is connected to edgeHub
    When the network between the device and IoT Hub is cut
    And "thermostat" reports the property "firmware" = "1.2.0"
    And the network is restored
    Then IoT Hub shows the reported property "firmware" of "thermostat" = "1.2.0"
