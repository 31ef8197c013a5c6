@edgehub @multiplexing
Feature: One connection to IoT Hub for every module and leaf device
  Over MQTT, Microsoft's edgeHub opens one connection to IoT Hub per module and leaf device.
  Outpost's edge hub opens one, as its own identity {edge}/$edgeHub, and carries every local
  client over it with an extension of the MQTT dialect (docs/upstream.md): IoT Hub
  authenticates each client through it, shows it connected, and stamps each message with
  its real sender, as if the client were connected itself. The edge agent keeps its own
  connection, as in Azure IoT Edge.

  A client that edgeHub has authenticated once (IoT Hub vouched for it and handed over what
  edgeHub needs to check its later tokens) can connect again while IoT Hub is unreachable.
  One that never connected cannot: nobody can vouch for it.

  The modules and leaf devices are programs of the test built on Outpost's device SDK; the
  leaf devices are children of the edge device in IoT Hub.

  Background:
    Given an IoT Edge device with a running edge agent
    And edgeHub is Outpost's edge hub
    And edgeHub routes every message to IoT Hub
    And the deployment is applied and edgeHub is connected to IoT Hub

  Scenario: IoT Hub sees one connection from the device, carrying every module and leaf device
    Given modules "sensorA", "sensorB" and "sensorC" and leaf devices "leaf1" and "leaf2" are connected to edgeHub
    When "sensorA", "sensorB", "sensorC", "leaf1" and "leaf2" each send 3 messages
    Then IoT Hub has one connection from the device for them all, edgeHub's, beside the edge agent's own
    And IoT Hub receives every message of "sensorA", "sensorB", "sensorC", "leaf1" and "leaf2" in the order each sent them
    And IoT Hub attributes every message to its real sender

  Scenario: A leaf device that connected once reconnects while IoT Hub is unreachable
    Given IoT Hub has leaf devices "leaf1" and "leaf2", children of the edge device
    And "leaf1" has connected to edgeHub once, and disconnected
    When the network between the device and IoT Hub is cut
    Then "leaf1" can connect to edgeHub
    And "leaf2" is refused by edgeHub as not authorized
    When "leaf1" sends 3 messages
    And the network is restored
    Then IoT Hub receives every message of "leaf1" in the order each sent them
    And IoT Hub attributes every message to its real sender
