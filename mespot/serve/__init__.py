"""Many streams at once: stream specs, the bus proxy, stream workers (processes or Ray actors) and
their supervisor (docs/scaling.md). Imports stream and below; cli and bench import it."""
