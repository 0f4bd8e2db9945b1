"""The reference worker (`nexus worker`): claims tasks for its agents and runs their step plans
with the actions of `catalog/ACTIONS.md`, through the runtime's worker RPCs. See README.md."""
