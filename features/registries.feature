@docker
Feature: Private container registries
  Module images come from container registries. A private registry needs the credentials
  listed in the deployment under runtime.settings.registryCredentials; the Docker runtime
  hands them to the engine for the pull. The reported properties never show a password:
  Outpost reports "***" where Azure IoT Edge echoes it. A pull that fails is reported with
  lastDesiredStatus 500 and retried.

  These scenarios need the Docker runtime: the process runtime runs local executables and
  ignores registries. The registry here is an in-process one on loopback, with basic
  authentication.

  Background:
    Given the device's modules run in Docker
    And an IoT Edge device with a running edge agent

  Scenario: Images are pulled from a private registry with the deployment's credentials
    Given a deployment with module "tempSensor" that keeps running
    When the deployment is applied
    Then the edge agent reports status 200 for that deployment
    And "tempSensor" is reported "running"
    And the reported registry password is hidden

  Scenario: A wrong registry password makes the pull fail with 500
    Given a deployment with module "tempSensor" that keeps running
    And the deployment's registry password is wrong
    When the deployment is applied
    Then the edge agent reports status 500 naming "tempSensor"
    And the reported properties do not contain the wrong password
    And "tempSensor" never started

  Scenario: Without registry credentials the pull fails with 500
    Given a deployment with module "tempSensor" that keeps running
    And the deployment has no registry credentials
    When the deployment is applied
    Then the edge agent reports status 500 naming "tempSensor"
    And "tempSensor" never started
