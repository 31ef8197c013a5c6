Feature: Deployments
  An IoT Edge device gets its deployment from the desired properties of its $edgeAgent
  module twin, which `az iot edge set-modules` writes (applyConfigurationContent). The edge
  agent runs the modules the deployment lists and reports the outcome in the $edgeAgent
  reported properties, as Azure IoT Edge does: lastDesiredStatus.code is
    200 once the deployment is applied,
    400 when it is malformed,
    412 when its schemaVersion is not supported,
    417 while the device has no deployment,
    406 when the agent is not running,
    500 when applying it failed (an image that cannot be pulled, for instance).
  A rejected deployment leaves the last good one running.

  The modules are a small test program whose behaviour comes from its environment; it keeps
  a journal of its starts and stops, which the scenarios check besides what the agent
  reports. edgeHub is that test program too here, since these scenarios are about the agent;
  the features about messaging deploy Outpost's edge hub as edgeHub.

  Background:
    Given an IoT Edge device with a running edge agent

  Scenario: A device without a deployment reports 417
    Then the edge agent reports status 417

  Scenario: A valid deployment is applied and reported with 200
    Given a deployment with these modules:
      | module     | version | restart policy |
      | tempSensor | 1.0     | always         |
      | filter     | 1.0     | on-failure     |
    When the deployment is applied
    Then the edge agent reports status 200 for that deployment
    And every module of the deployment is reported "running"
    And the reported modules carry the version, image and restart policy of the deployment

  Scenario: A malformed deployment is rejected with 400 and the last good one keeps running
    Given a deployment with module "tempSensor" that keeps running
    And the deployment is applied
    And "tempSensor" is reported "running"
    When a deployment is applied in which module "tempSensor" has restart policy "sometimes"
    Then the edge agent reports status 400 naming "modules.tempSensor.restartPolicy"
    And "tempSensor" was not restarted

  Scenario: A deployment of an unsupported schema version is rejected with 412
    Given a deployment with module "tempSensor" that keeps running
    When a deployment with schemaVersion "2.0" is applied
    Then the edge agent reports status 412 naming "schemaVersion"
    And "tempSensor" never started

  Scenario: A stopped edge agent reports 406 and leaves its modules running
    Given a deployment with module "tempSensor" that keeps running
    And the deployment is applied
    And "tempSensor" is reported "running"
    When the edge agent is stopped
    Then the edge agent reports status 406
    And "tempSensor" was not stopped

  Scenario: A new module version replaces the running one
    Given a deployment with module "tempSensor" at version "1.0"
    And the deployment is applied
    And "tempSensor" is reported "running" at version "1.0"
    When the deployment is changed so that "tempSensor" runs version "1.1"
    Then the edge agent reports status 200 for that deployment
    And "tempSensor" is reported "running" at version "1.1"
    And the old "tempSensor" was stopped before the new one started

  Scenario: A module removed from the deployment is stopped and removed
    Given a deployment with these modules:
      | module     |
      | tempSensor |
      | filter     |
    And the deployment is applied
    And every module of the deployment is reported "running"
    When the deployment is changed so that "filter" is removed
    Then the edge agent reports status 200 for that deployment
    And "filter" is no longer reported
    And "filter" was stopped and no longer exists on the device
    And "tempSensor" was not restarted

  Scenario: Modules start in the order of their startupOrder, after edgeHub
    Given a deployment with these modules:
      | module | startup order |
      | last   | 30            |
      | first  | 10            |
      | middle | 20            |
    When the deployment is applied
    Then every module of the deployment is reported "running"
    And the modules started in this order: edgeHub, first, middle and last

  Scenario: An image that cannot be pulled is reported with 500 and the other modules run
    Given a deployment with these modules:
      | module     | image               |
      | tempSensor |                     |
      | ghost      | not in the registry |
    When the deployment is applied
    Then the edge agent reports status 500 naming "ghost"
    And "tempSensor" is reported "running"
    And "ghost" never started
