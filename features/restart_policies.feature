Feature: Restart policies
  Each module of a deployment has a restartPolicy: never, on-failure, on-unhealthy or
  always (on-unhealthy when the deployment leaves it out). Azure IoT Edge treats
  on-failure and on-unhealthy alike; Outpost makes the four levels real, each doing what
  the one before does and more:

    never         the agent never restarts the module
    on-failure    restarted after it exits with a code other than 0 (or is killed)
    on-unhealthy  also stopped and restarted when its health check fails
    always        also restarted after it exits with code 0

  The health check is the module's Healthcheck in createOptions: Docker runs it in the
  container, the process runtime runs the same command beside the process.

  A restart waits for a back-off, IoT Edge's cool-off: one unit after the first failure,
  doubling after each restart up to a cap, and the count starts again once the module has
  run long enough. The scenarios run the edge agent with a short back-off unit; those
  tagged @short-backoff are skipped when the agent has no flags to shorten it (its
  defaults, 10 seconds doubling and 10 minutes, would make them take minutes).

  Background:
    Given an IoT Edge device with a running edge agent

  Scenario Outline: Restart policy <policy> restarts a module that <behaviour>
    Given a deployment with module "probe" that <behaviour>, with restart policy "<policy>"
    When the deployment is applied
    Then "probe" is restarted

    Examples:
      | policy       | behaviour                  |
      | on-failure   | exits with code 1 after 1s |
      | on-unhealthy | exits with code 1 after 1s |
      | on-unhealthy | becomes unhealthy after 1s |
      | always       | exits with code 0 after 1s |
      | always       | exits with code 1 after 1s |
      | always       | becomes unhealthy after 1s |

  Scenario Outline: Restart policy <policy> leaves alone a module that <behaviour>
    Given a deployment with module "probe" that <behaviour>, with restart policy "<policy>"
    When the deployment is applied
    Then "probe" is not restarted
    And "probe" is reported "<runtime status>"

    Examples:
      | policy       | behaviour                  | runtime status |
      | never        | exits with code 0 after 1s | stopped        |
      | never        | exits with code 1 after 1s | failed         |
      | never        | becomes unhealthy after 1s | unhealthy      |
      | on-failure   | exits with code 0 after 1s | stopped        |
      | on-failure   | becomes unhealthy after 1s | unhealthy      |
      | on-unhealthy | exits with code 0 after 1s | stopped        |

  @short-backoff
  Scenario: The back-off doubles with every restart
    Given a deployment with module "crashloop" that exits with code 1 after 0s, with restart policy "always"
    When the deployment is applied
    Then "crashloop" is restarted 3 times
    And the waits before those restarts were about 1, 2 and 4 back-off units
    And "crashloop" is reported "backoff" with restart count 3

  @short-backoff
  Scenario: The restart count starts again once a module has run long enough
    Given a deployment with module "flaky" that fails its first 2 starts, with restart policy "on-failure"
    When the deployment is applied
    Then "flaky" is reported "running" with restart count 2
    When "flaky" has kept running for the reset time
    Then "flaky" is reported "running" with restart count 0

  Scenario: A module whose desired status becomes stopped is stopped and stays stopped
    Given a deployment with module "pump" that keeps running, with restart policy "always"
    And the deployment is applied
    And "pump" is reported "running"
    When the deployment is changed so that "pump" has desired status "stopped"
    Then "pump" is stopped by the edge agent
    And "pump" is reported "stopped"
    And "pump" is not restarted

  Scenario: A module deployed with desired status stopped is not started
    Given a deployment with these modules:
      | module | restart policy | desired status |
      | pump   | always         | stopped        |
    When the deployment is applied
    Then "pump" is reported "stopped"
    And "pump" never started

  Scenario: Restarting the edge agent leaves healthy modules running
    Given a deployment with these modules:
      | module     | restart policy | behaviour                         |
      | tempSensor | always         | keeps running                     |
      | filter     | on-unhealthy   | keeps running with a health check |
    And the deployment is applied
    And every module of the deployment is reported "running"
    When the edge agent is restarted
    Then the edge agent reports status 200 for that deployment
    And no module was restarted
