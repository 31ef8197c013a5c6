@edgehub @auth
Feature: Who may connect to edgeHub, and what a client may do
  edgeHub accepts the modules of its edge device and the leaf devices whose parent it is,
  each with a SAS token signed with the identity's own key, exactly as IoT Hub would: IoT
  Hub vouches for a client edgeHub does not know yet. Any other CONNECT is refused with
  "not authorized" (CONNACK 5). An identity disabled in IoT Hub is disconnected and refused
  from then on; edgeHub checks the identities it knows with IoT Hub every second here
  (EDGEHUB_IDENTITY_REFRESH).

  A connected client may publish and subscribe on its own topics only. Publishing on
  another identity's topic closes the connection, as IoT Hub does, and the message goes
  nowhere; subscribing to another identity's topics is refused in the SUBACK.

  The modules and leaf devices are programs of the test built on Outpost's device SDK, or
  a plain MQTT client (paho) for what the SDK would never send.

  Background:
    Given an IoT Edge device with a running edge agent
    And edgeHub is Outpost's edge hub
    And edgeHub routes every message to IoT Hub
    And the deployment is applied and edgeHub is connected to IoT Hub

  Scenario: Wrong keys and devices outside the edge device's scope are refused
    Given IoT Hub has module identity "sensor" of the edge device
    And IoT Hub has leaf device "leaf1", a child of the edge device
    And IoT Hub has device "stranger", which is not a child of the edge device
    Then edgeHub refuses these connections as not authorized:
      | client   | key         |
      | sensor   | not its own |
      | leaf1    | not its own |
      | stranger | its own     |
    But "sensor" can connect to edgeHub
    And "leaf1" can connect to edgeHub

  Scenario: A client publishing or subscribing on another identity's topics is refused
    Given module "alarm" is connected to edgeHub
    And IoT Hub has module identity "sensor" of the edge device
    And "sensor" connects to edgeHub with a plain MQTT client
    When "sensor" subscribes to the inputs of "alarm"
    Then edgeHub refuses that subscription and keeps the connection
    When "sensor" publishes a message on the telemetry topic of "alarm"
    Then edgeHub closes the connection of "sensor" without acknowledging the message
    When "alarm" sends 2 messages
    Then IoT Hub receives every message of "alarm" in the order each sent them

  Scenario: A leaf device disabled in IoT Hub is disconnected and refused
    Given leaf device "leaf1" is connected to edgeHub
    When IoT Hub disables leaf device "leaf1"
    Then edgeHub disconnects "leaf1"
    And "leaf1" is refused by edgeHub as not authorized
