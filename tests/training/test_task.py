"""imet_kit.training.task: the task registry (every name resolves to a Task with that name; an
unknown name lists the choices) and what the Task base class gives a new task for free."""

import pytest

from imet_kit.errors import InputError
from imet_kit.training.task import TASKS, FoldSetup, Task, TaskData, get_task


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_resolves_to_its_class(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name == name
    assert task.best_key == "best_" + task.monitor.removeprefix("val_")
    assert get_task(name) is not task  # a fresh instance per call: no state shared between runs


def test_the_shipped_tasks_and_what_they_monitor():
    assert {"multilabel", "embedding"} <= set(TASKS)
    assert get_task("multilabel").best_key == "best_f2"
    assert get_task("embedding").monitor.startswith("val_")


@pytest.mark.parametrize("name", ["multi-label", "", "MULTILABEL", None])
def test_an_unknown_task_lists_the_choices(name):
    with pytest.raises(InputError) as exc:
        get_task(name)
    msg = str(exc.value)
    assert f"Unknown task {name!r}" in msg and "Expected one of:" in msg
    assert all(t in msg for t in TASKS)


class _Counting(Task):
    name = "counting"
    monitor = "val_acc"


def test_base_class_defaults():
    task = _Counting()
    assert task.best_key == "best_acc"
    assert task.check_config(object()) == [] and task.callbacks(None, None, None, None) == []
    assert task.describe_fold({"best_acc": 0.5}) == "best val_acc 0.5000"
    assert task.describe_fold({}) == "best val_acc nan"

    class Run:
        path = "runs/r"

    assert task.finish(Run(), None, None, None, {"0": {}}) == {
        "run": "runs/r", "task": "counting", "folds": {"0": {}}}
    for method, args in ((task.load_data, (None,)), (task.setup_fold, (None,) * 5),
                         (task.build_model, (None,) * 4), (task.compile_model, (None,) * 5),
                         (task.finish_fold, (None,) * 6)):
        with pytest.raises(NotImplementedError):
            method(*args)


def test_data_holders_default_to_empty_extras():
    data = TaskData(ids=["a"], space=None, y=[[1]], paths=["a.png"])
    setup = FoldSetup(train=[1, 2])
    assert data.extra == {} and setup.fit_kwargs == {} and setup.extra == {}
    assert TaskData(["b"], None, [[0]], ["b.png"]).extra is not data.extra
