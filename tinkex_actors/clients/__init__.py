"""The client actors and their handles: session, training, sampling and its backpressure."""
