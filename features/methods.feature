@edgehub @methods
Feature: Direct methods
  A solution invokes a module's direct method through IoT Hub's service API; edgeHub
  receives the call on its connection to IoT Hub, hands it to the module and sends the
  answer back. Modules call each other's methods through edgeHub's own method API (HTTPS,
  what the Azure module SDKs' InvokeMethodAsync calls), authenticated with the caller's
  token: that call never leaves the device, so it works while IoT Hub is unreachable. A
  call to a module that is not connected fails with 404.

  The modules are programs of the test built on Outpost's device SDK; their handlers answer
  with status 200, naming the module and echoing the request's payload.

  Background:
    Given an IoT Edge device with a running edge agent
    And edgeHub is Outpost's edge hub
    And the deployment is applied and edgeHub is connected to IoT Hub

  Scenario: A method invoked from the cloud reaches the module through edgeHub
    Given module "valve" is connected to edgeHub
    And IoT Hub has module identity "pump" of the edge device
    And "valve" answers direct method "close"
    When the solution invokes method "close" on "valve" with payload {"position": 0, "rampSeconds": 5}
    Then "valve" answers with status 200, echoing the payload
    When the solution invokes method "close" on "pump" with payload {}
    Then the call fails with HTTP status 404

  Scenario: A module calls another module's method through edgeHub, also while IoT Hub is unreachable
    Given modules "controller" and "valve" are connected to edgeHub
    And "valve" answers direct method "close"
    When "controller" invokes method "close" on "valve" with payload {"position": 10}
    Then "valve" answers with status 200, echoing the payload
    When the network between the device and IoT Hub is cut
    And "controller" invokes method "close" on "valve" with payload {"position": 0}
    Then "valve" answers with status 200, echoing the payload
    When "controller" invokes method "close" on "pump" with payload {}
    Then the call fails with HTTP status 404
