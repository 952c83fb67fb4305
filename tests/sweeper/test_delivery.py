"""The writes of a sweep's runs go out from a background thread, in order: the caller
does not wait for the store, an outage holds them, a refusal is raised by the next call."""

import threading

import pytest
from mlflow.exceptions import MlflowException

from sweeper.record.delivery import Delivery


class Store:
    """A store whose writes can be held up (`gate`), or fail as an outage (`down`)."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.down = False

    def op(self, n: int) -> object:
        def write() -> None:
            self.gate.wait(10)
            if self.down:
                raise MlflowException("connection refused")
            self.written.append(n)
        return write


def test_writes_return_at_once_and_arrive_in_order() -> None:
    store, delivery = Store(), Delivery("sqlite:///x.db", retry_s=0.05)
    store.gate.clear()  # the store takes its time
    for n in range(5):
        delivery.write(store.op(n), f"write {n}")  # type: ignore[arg-type]
    assert store.written == [] and delivery.held == 5  # the caller did not wait
    store.gate.set()
    delivery.flush()
    assert store.written == [0, 1, 2, 3, 4] and delivery.held == 0


def test_an_outage_holds_the_writes_until_the_store_returns() -> None:
    store, delivery = Store(), Delivery("sqlite:///x.db", retry_s=0.05)
    store.down = True
    for n in range(3):
        delivery.write(store.op(n), f"write {n}")  # type: ignore[arg-type]
    delivery.flush()  # returns: the store is down, nothing is lost
    assert store.written == [] and delivery.held == 3
    assert delivery.drain(patience_s=0) == 3
    store.down = False
    delivery.write(store.op(3), "write 3")  # type: ignore[arg-type]
    assert delivery.drain(patience_s=5) == 0
    assert store.written == [0, 1, 2, 3]


def test_a_refused_write_is_raised_by_the_next_call() -> None:
    delivery = Delivery("sqlite:///x.db", retry_s=0.05)

    def refused() -> None:
        raise ValueError("INVALID_PARAMETER_VALUE: param changed")

    delivery.write(refused, "params")
    with pytest.raises(ValueError, match="param changed"):
        delivery.flush()


def test_an_effect_runs_after_the_writes_before_it() -> None:
    store, delivery = Store(), Delivery("sqlite:///x.db", retry_s=0.05)
    store.gate.clear()
    shown: list[list[int]] = []
    delivery.write(store.op(0), "write 0")  # type: ignore[arg-type]
    delivery.then(lambda: shown.append(list(store.written)))
    delivery.write(store.op(1), "write 1")  # type: ignore[arg-type]
    assert shown == []  # its write is not in yet
    store.gate.set()
    delivery.flush()
    assert shown == [[0]] and store.written == [0, 1]


def test_effects_do_not_wait_for_writes_an_outage_holds() -> None:
    store, delivery = Store(), Delivery("sqlite:///x.db", retry_s=0.05)
    store.down = True
    shown: list[str] = []
    delivery.write(store.op(0), "write 0")  # type: ignore[arg-type]
    delivery.then(lambda: shown.append("first"))
    delivery.flush()
    delivery.then(lambda: shown.append("second"))
    delivery.flush()
    assert shown == ["first", "second"] and delivery.held == 1  # in order, write kept
    store.down = False
    assert delivery.drain(patience_s=5) == 0 and store.written == [0]


def test_a_call_returns_its_result_after_the_writes_before_it() -> None:
    store, delivery = Store(), Delivery("sqlite:///x.db", retry_s=0.05)
    delivery.write(store.op(0), "write 0")  # type: ignore[arg-type]
    assert delivery.call(lambda: len(store.written), "a read") == 1

    def refused() -> None:
        raise ValueError("bad run id")

    with pytest.raises(ValueError, match="bad run id"):
        delivery.call(refused, "a run")
    store.down = True
    delivery.write(store.op(1), "write 1")  # type: ignore[arg-type]
    delivery.flush()
    # While the store is down a call runs at once, and its outage is the caller's.
    with pytest.raises(MlflowException, match="connection refused"):
        delivery.call(store.op(2), "a run")  # type: ignore[arg-type]
    assert delivery.held == 1


def test_a_call_behind_a_refused_write_raises_the_refusal_and_never_runs() -> None:
    delivery = Delivery("sqlite:///x.db", retry_s=0.05)
    ran: list[str] = []
    gate = threading.Event()

    def refused() -> None:
        gate.wait(10)
        raise ValueError("INVALID_PARAMETER_VALUE: param changed")

    delivery.write(refused, "params")
    threading.Timer(0.2, gate.set).start()
    with pytest.raises(ValueError, match="param changed"):
        delivery.call(lambda: ran.append("create"), "a run")
    assert ran == [] and delivery.held == 1


def test_a_write_settles_before_it_goes_out_unless_someone_waits_for_it() -> None:
    store, delivery = Store(), Delivery("sqlite:///x.db", settle_s=0.3)
    delivery.write(store.op(1), "write 1")  # type: ignore[arg-type]
    threading.Event().wait(0.1)
    assert store.written == [] and delivery.held == 1  # still settling
    for _ in range(100):  # out once settled, with nobody waiting
        if store.written:
            break
        threading.Event().wait(0.05)
    assert store.written == [1]

    delivery.write(store.op(2), "write 2")  # type: ignore[arg-type]
    delivery.write(store.op(3), "write 3")  # type: ignore[arg-type]
    delivery.flush()  # a caller waits: no settling
    assert store.written == [1, 2, 3]
    delivery.write(store.op(4), "write 4")  # type: ignore[arg-type]
    assert delivery.call(lambda: list(store.written), "read") == [1, 2, 3, 4]
    delivery.write(store.op(5), "write 5")  # type: ignore[arg-type]
    assert delivery.drain(patience_s=5) == 0 and store.written == [1, 2, 3, 4, 5]
