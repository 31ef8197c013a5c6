@edgehub @routing
Feature: Routes, their conditions and priorities
  edgeHub sends each message where the routes of the $edgeHub desired properties say:
  FROM a source, WHERE a condition holds, INTO $upstream (IoT Hub) or a module's input
  (BrokeredEndpoint). A condition reads the message's application properties (strings:
  as_number makes them numbers) and, for a JSON body in UTF-8, the body ($body.x). A
  message no route matches is dropped.

  Routes of schema 1.1 may carry a priority, 0 the highest. While messages wait (the device
  is offline, a module is away), edgeHub forwards those of a higher priority first; a lower
  priority still gets one message through after every 8 of a higher one, so it is never
  starved.

  The modules are programs of the test built on Outpost's device SDK.

  Background:
    Given an IoT Edge device with a running edge agent
    And edgeHub is Outpost's edge hub

  Scenario: Conditions choose which messages go to a module and which to IoT Hub
    Given edgeHub has these routes:
      | name     | route                                                                                                                              |
      | hot      | FROM /messages/modules/sensor/outputs/temperature WHERE as_number(temperature) > 30 INTO BrokeredEndpoint("/modules/alarm/inputs/hot") |
      | critical | FROM /messages/modules/sensor/outputs/* WHERE $body.level = 'critical' INTO $upstream                                              |
    And the deployment is applied and edgeHub is connected to IoT Hub
    And modules "sensor" and "alarm" are connected to edgeHub
    When "sensor" sends these messages on output "temperature":
      | temperature | level    |
      | 25          | normal   |
      | 35          | normal   |
      | 31          | critical |
      | 12          | critical |
      | 40          | critical |
    Then "alarm" receives on input "hot" the messages with temperature 35, 31 and 40 from "sensor", in that order
    And IoT Hub receives from "sensor" the messages with temperature 31, 12 and 40, in that order

  Scenario: After an outage, messages of a higher-priority route reach IoT Hub first
    Given edgeHub has these routes:
      | name     | route                                                         | priority |
      | alerts   | FROM /messages/modules/sensor/outputs/alerts INTO $upstream   | 0        |
      | readings | FROM /messages/modules/sensor/outputs/readings INTO $upstream | 5        |
    And the deployment is applied and edgeHub is connected to IoT Hub
    And module "sensor" is connected to edgeHub
    When the network between the device and IoT Hub is cut
    And "sensor" sends 12 messages on output "readings"
    And "sensor" sends 6 messages on output "alerts"
    And the network is restored
    Then IoT Hub receives the messages "sensor" sent on output "alerts" before those on output "readings", each in the order sent
