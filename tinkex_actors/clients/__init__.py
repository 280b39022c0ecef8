"""The client actors and their handles: session, training, sampling and its backpressure.

A handle (`TrainingClient`, `SamplingClient`) runs in the caller's thread: it checks the
arguments, encodes the body, reserves the order, and tells its actor. The actor runs on the
shared worker pool and never waits on I/O.

- `client_actor`: the skeleton both client actors share (state kept outside the actor, adoption
  on restart, settling on stop, sends whose answers come back as messages).
- `training` (the handle, the official surface), `training_requests` (checks and bodies),
  `training_sequencer` (seq_ids, chunking, the actor that submits in order), `custom_loss`,
  `chunked_results` (one result from a chunked forward_backward), `training_owner` (what a
  TrainingClient needs of its ServiceClient, as a Protocol).
- `sampling` (the handle), `sampling_checks`, `sampling_actor` (dispatch under backpressure),
  `backpressure` and `rate_limiter` (the dispatch budget and the shared 429 window),
  `sampler_handle` (a sampler named for another process), `sampling_process` (samplers in a
  supervised child process).
- `session` (the SessionManager: create, heartbeat, finish), `telemetry_reporter`,
  `handshake` (`client/config`), `extras` (small official pieces several clients share),
  `actor_support` (helpers of every actor of the package).
"""
