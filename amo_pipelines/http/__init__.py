"""The request chain between the resources and the transport: policies composed around a
transport (close gate, auth, logging), retry, throttling on 429 and the circuit breaker, the
injected clock, and account URLs."""
