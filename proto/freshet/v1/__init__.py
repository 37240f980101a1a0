"""Generated bindings of the Freshet wire contract (package `freshet.v1`); see proto/*.proto."""
