"""A multi-worker job's one-line error when a peer goes: from TensorFlow's collective abort (the
text below is what a chief printed when the link to its peer's node was cut, Ray 2.60 and
TensorFlow 2.20, two network namespaces), from a peer's exit status, and from Ray's actor death."""

from __future__ import annotations

from app.worker.peer_failures import collective_failure, peer_death, unhealthy_tasks

PARTITION = (
    "Graph execution error:\n\nDetected at node CollectiveReduceV2_13 defined at (most recent call last):\n"
    '  File "<frozen runpy>", line 198, in _run_module_as_main\n\n'
    '  File "/work/main/ssd/distributed.py", line 229, in step\n\n'
    "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are unhealthy "
    "(stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed. Check the task logs for "
    "an earlier error, or scheduler events (e.g. preemption, eviction) to debug further.\nThe error could be from "
    "a previous operation. Restart your program to reset.\n\t [[{{node CollectiveReduceV2_13}}]] "
    "[Op:__inference_step_5120]"
)

PEERS = ["10.213.0.1:40001", "10.213.0.2:40002", "10.213.0.3:40003"]


def test_the_silent_peer_is_the_one_listed_after_the_heartbeat_words() -> None:
    assert unhealthy_tasks(PARTITION) == [1]
    listed = "Error reported from /job:worker/task:0: ... (stopped sending heartbeats):\n/job:worker/replica:0/task:2\n"
    assert unhealthy_tasks(listed) == [2]  # not the reporter (task 0) named before the list
    assert unhealthy_tasks("Socket closed: /job:worker/replica:0/task:2, then /job:worker/task:1") == [2, 1]
    assert unhealthy_tasks("Graph execution error: out of range") == []


def test_a_partition_is_one_line_naming_the_peer_and_its_node() -> None:
    line = collective_failure(PARTITION, PEERS)
    assert line == (
        "worker process 1 of 3 (10.213.0.2:40002) stopped answering the chief: its node was lost or the "
        "network to it was cut (TensorFlow's heartbeat check aborted the step's all-reduce)"
    )
    assert "\n" not in line and len(line) < 250


def test_an_abort_naming_no_peer_of_the_job_is_left_to_the_caller() -> None:
    assert collective_failure("Graph execution error: ResourceExhausted", PEERS) is None
    assert collective_failure(PARTITION.replace("task:1", "task:7"), PEERS) is None  # no such worker
    assert collective_failure(PARTITION.replace("task:1", "task:0"), PEERS) is None  # the chief itself


def test_a_peer_whose_node_was_lost_is_not_said_to_be_killed_by_a_signal() -> None:
    # Ray reports -9 for every gone actor; what it said of the death is used instead.
    assert (
        peer_death([-9], ["its node 10.213.0.2 was lost"]) == "worker process 1 of 2 died: its node 10.213.0.2 was lost"
    )
    assert peer_death([None, -9], [None, None]) == "worker process 2 of 3 died: killed by signal 9 (SIGKILL)"
    assert peer_death([0, 2], [None, None]) == "worker process 2 of 3 died: exit code 2"


def test_ray_s_death_causes_become_words_about_the_node() -> None:
    from app.worker.job import describe
    from app.worker.peer_failures import PeerDied
    from app.worker.ray_peers import PlacementTimeout, death_cause

    class ActorUnavailableError(Exception):  # Ray's name: the raylet or the link to it is gone
        pass

    class ActorDiedError(Exception):
        pass

    node = "10.213.0.2"
    assert death_cause(ActorUnavailableError("Socket closed"), node).startswith(f"its node {node} was lost or cannot")
    died = ActorDiedError("The actor died because its node has died. Node Id: 5b96f8")
    assert death_cause(died, node) == f"its node {node} was lost"
    killed = ActorDiedError("The actor is dead because it was killed by `ray.kill`.")
    assert death_cause(killed, node) == f"its Ray actor on {node} was killed"
    assert (
        death_cause(ActorDiedError("\n  exit code 1\n"), node)
        == f"its Ray actor on {node} died (ActorDiedError: exit code 1)"
    )
    # The job's error is their message as it stands.
    assert describe(PeerDied("worker process 1 of 2 died: exit code 1")) == "worker process 1 of 2 died: exit code 1"
    assert describe(PlacementTimeout("no room")) == "no room"
