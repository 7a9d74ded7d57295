from tests.guards import no_leftover_tasks  # noqa: F401  (autouse guard)
