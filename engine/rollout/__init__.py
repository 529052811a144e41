"""Canary rollout through the model config file that every server of the fleet polls.

The servers (riskpipe serve or tensorflow_model_server with
--model_config_file and --model_config_file_poll_wait_seconds) re-read a
ModelServerConfig text proto. The model under rollout is pinned with the
`specific` version policy and two version labels, `stable` and `canary`.
The clients read the canary share from the routing file next to the config
(engine/routing.py).

The package: model_config (read, validate and write the file), config_edits
(pure changes to a config), fleet (what the servers report over gRPC),
controller (the steps below) and fleet_metrics (per-version request figures
scraped from the servers' Prometheus endpoints).

Steps, each of which validates the new config before writing it, writes it
atomically (temp file, then rename), and restores the previous config when
the fleet does not take the change:

    stage VERSION        add VERSION to the specific versions; wait until every
                         server reports it AVAILABLE (GetModelStatus)
    canary VERSION SHARE point `canary` at VERSION; wait until every server resolves
                         the label to it; then publish SHARE in the routing file
    promote              point `stable` at the canary version and wait for it; set the
                         share to 0; after the clients' grace period drop `canary` and
                         every version no label points at
    rollback             set the share to 0; after the grace period drop `canary` and
                         the canary version; `stable` is untouched

The file is rewritten in the canonical text-proto form, so comments in it do
not survive a step. A label may only move onto a version a server has AVAILABLE, which is why a
canary takes two config writes (stage, then canary). Every intermediate config
is one the servers accept: a rollout interrupted between any two writes leaves
the fleet serving, and re-running the interrupted step completes it.
"""


class RolloutError(Exception):
    """A rollout step that cannot go ahead; the message says what and where."""
