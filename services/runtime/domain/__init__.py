"""Pure rules of the runtime: the task state machine, event rules and lease rules. No I/O."""
