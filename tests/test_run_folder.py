"""Run folders that never lose data (issue 11): each test is one defect found by trying it, and fails on the code
before the fix. vitlab/train/run_dir.py (name, lock, overwrite, stale temporaries, metrics.jsonl), loop.py (order of
the best and the newest checkpoint, roll-back, a full disk)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vitlab.cli import main
from vitlab.configio import apply_overrides
from vitlab.errors import RunFolderError
from vitlab.recipes import digits
from vitlab.train import fit
from vitlab.train.checkpoint import load_tensors
from vitlab.train.run_dir import RunFolder, step_checkpoints

TINY = {"model.dim": 16, "model.depth": 1, "model.heads": 2, "model.patch_size": 4, "model.mlp_ratio": 2.0,
        "model.pool": "avg", "model.drop_path": 0.0, "data.augment": "digits", "optim.epochs": 3,
        "optim.batch_size": 64, "optim.lr": 5e-3, "optim.warmup_epochs": 1.0, "device": "cpu", "progress": False,
        "threads": 1, "seed": 5}
FLAGS = [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in TINY.items()]
ENV = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
TIMING = {"epoch_time_s", "images_per_s"}


def config(out, name, **changes):
    return apply_overrides(digits(), {**TINY, "out_dir": str(out), "name": name, **changes})


def rows(run):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def same_weights(a: Path, b: Path) -> bool:
    ta, tb = load_tensors(a)[0], load_tensors(b)[0]
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return fit(config(tmp_path_factory.mktemp("ref"), "reference", ckpt_every=5, keep_last=20))


# -- 1, 2: what --name and --overwrite may touch -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "a/b", "/tmp/x", "../sibling", ".hidden", ""])
def test_a_run_name_is_a_plain_folder_name(tmp_path, capsys, name):
    """`--name .. --overwrite` deleted the project folder, `--name .` every run: a name is one plain folder name."""
    project = tmp_path / "project"
    (project / "runs" / "old").mkdir(parents=True)
    (project / "src.py").write_text("keep")
    (project / "runs" / "old" / "config.json").write_text("{}")
    os.chdir(project)
    try:
        if name == "":  # empty means a time stamp, not the folder itself
            code, _, err = cli(capsys, "train", *FLAGS, "--epochs", "1", "--name", name, "--overwrite")
            assert code == 0 and len(list((project / "runs").iterdir())) == 2
        else:
            code, _, err = cli(capsys, "train", *FLAGS, "--name", name, "--overwrite")
            assert code == 2 and "is not a plain folder name" in err and repr(name) in err
    finally:
        os.chdir(tmp_path)
    assert (project / "src.py").read_text() == "keep" and (project / "runs" / "old" / "config.json").exists()


@pytest.mark.parametrize("bad", [["--optim.betas", "2,3"], ["--data", "folder:/no/such/folder"],
                                 ["--model.heads", "3"], ["--model.num_classes", "5"]])
def test_overwrite_removes_nothing_until_every_check_has_passed(tmp_path, capsys, bad):
    """`--overwrite --optim.betas 2,3` left runs/A empty: now a bad configuration, data that cannot be read and a
    model that does not fit the data each leave the old run untouched."""
    assert cli(capsys, "train", *FLAGS, "--epochs", "1", "--out_dir", tmp_path, "--name", "A")[0] == 0
    contents = lambda: {str(p.relative_to(tmp_path)): p.read_bytes() for p in (tmp_path / "A").rglob("*")  # noqa: E731
                        if p.is_file()}
    before = contents()
    code, _, err = cli(capsys, "train", *FLAGS, "--out_dir", tmp_path, "--name", "A", "--overwrite", *bad)
    assert code == 2 and err.startswith("vitlab train: error:")
    assert contents() == before


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("years of work")
    code, _, err = cli(capsys, "train", *FLAGS, "--out_dir", tmp_path, "--name", "notes", "--overwrite")
    assert code == 2 and "is not a vitlab run folder" in err
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "years of work"


# -- 3: one writer a run folder ------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, capsys):
    """Two `vitlab train --name C` at once both 'succeeded', interleaving two runs in one metrics.jsonl, and a
    --resume of a run still training was accepted."""
    cmd = [sys.executable, "-m", "vitlab.cli", "train", "-q", *FLAGS, "--epochs", "200", "--out_dir", str(tmp_path),
           "--name", "C"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "C"
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.safetensors").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        for argv in (["train", *FLAGS, "--out_dir", tmp_path, "--name", "C"],
                     ["train", *FLAGS, "--out_dir", tmp_path, "--name", "C", "--overwrite"],
                     ["train", "--resume", run]):
            code, _, err = cli(capsys, *argv)
            assert code == 2 and f"in use by another vitlab process (pid {proc.pid})" in err, err
        assert (run / "config.json").exists() and proc.poll() is None  # the running one is untouched
    finally:
        proc.kill()
        proc.communicate()
    from vitlab.train.run_dir import read_rows  # the kill may tear the last line: that one is dropped

    epochs = [r["epoch"] for r in read_rows(run / "metrics.jsonl")]
    assert epochs == list(range(1, len(epochs) + 1))  # one run's rows, each epoch once
    # the lock dies with its holder (SIGKILL included): the run resumes
    code, _, err = cli(capsys, "train", "--resume", run, "--epochs", str(len(epochs) + 1))
    assert code == 0, err


def test_the_lock_is_held_while_the_folder_is_open(tmp_path):
    cfg = config(tmp_path, "held")
    with RunFolder.open(cfg, resume=False, overwrite=False):
        with pytest.raises(RunFolderError, match=f"pid {os.getpid()}"):
            fit(cfg)
    assert fit(cfg).name == "held"


# -- 4: killed before its first checkpoint -------------------------------------------------------------------------
def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(reference, tmp_path, capsys, caplog):
    """Such a run could neither be resumed nor restarted without --overwrite. It is killed for real here, as soon
    as its folder exists, before the end of its first epoch."""
    cmd = [sys.executable, "-m", "vitlab.cli", "train", "-q", *FLAGS, "--ckpt-every", "5", "--keep-last", "20",
           "--out_dir", str(tmp_path), "--name", "early", "--model.dim", "16"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "early"
    while not (run / "config.json").exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    if (run / "checkpoint.safetensors").exists():  # the kill landed after the first checkpoint: make it before
        (run / "checkpoint.safetensors").unlink()
        (run / "metrics.jsonl").write_text("")
        for p in step_checkpoints(run):
            p.unlink()
    code, _, err = cli(capsys, "train", *FLAGS, "--out_dir", tmp_path, "--name", "early")
    assert code == 2 and "it has no checkpoint yet: --resume starts it again from step 0" in err
    with caplog.at_level("INFO"):
        code, _, err = cli(capsys, "train", "--resume", run)
    assert code == 0, err
    assert "has no checkpoint yet: starting it again from step 0" in caplog.text
    assert same_weights(reference / "model.safetensors", run / "model.safetensors")
    assert rows(reference) == rows(run)


# -- 6: roll back to a kept checkpoint ------------------------------------------------------------------------------
def test_roll_back_with_from_keeps_everything_else(reference, tmp_path, capsys):
    """The documented roll-back (cp checkpoint-stepN... checkpoint.safetensors) overwrote the best model through a
    hard link; now it is `--resume RUN --from FILE`, and what it leaves behind is set aside, not deleted."""
    run = tmp_path / "back"
    shutil.copytree(reference, run)
    best_before = (run / "best.safetensors").read_bytes()
    best_step = load_tensors(run / "best.safetensors")[1]["step"]
    source = run / "checkpoint-step000025.safetensors"  # epoch 2, batch 5
    code, _, err = cli(capsys, "train", "--resume", run, "--from", source)
    assert code == 0, err
    aside = sorted(p.name for p in run.iterdir() if p.name.startswith("abandoned-"))
    # the step checkpoints after step 25 and the metrics rows after epoch 1 are kept under abandoned-<time>-*
    assert sum(n.endswith("metrics.jsonl") for n in aside) == 1
    assert {n.split("-", 3)[-1] for n in aside if "checkpoint-step" in n} == {
        f"checkpoint-step{s:06d}.safetensors" for s in (30, 35, 40, 45, 50, 55, 60)}
    if best_step > 25:  # the best of the abandoned steps is set aside, not overwritten
        assert any(n.endswith("best.safetensors") and (run / n).read_bytes() == best_before for n in aside)
    # and the run continued from step 25 retraces the original one exactly
    assert same_weights(reference / "model.safetensors", run / "model.safetensors")
    assert rows(reference) == rows(run)


def test_from_needs_resume(tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--from", tmp_path / "x.safetensors")
    assert code == 2 and "--resume RUN --from FILE" in err


# -- 7: best.safetensors is never behind the newest checkpoint ------------------------------------------------------
class Killed(BaseException):
    """A kill between two writes (BaseException: nothing in the loop catches it)."""


@pytest.mark.parametrize("kill_at", ["checkpoint.safetensors", "checkpoint-step"])
def test_a_kill_between_the_best_and_the_newest_checkpoint_leaves_the_best_right(reference, tmp_path, monkeypatch,
                                                                                kill_at):
    """best.safetensors went stale when a kill landed between the checkpoint and the best link: the loop now
    writes the best first, then the newest checkpoint, then the step file. A kill before either of the last two
    (at the epoch end of the run's last best epoch) leaves a best that the resumed run completes correctly."""
    import vitlab.train.loop as loop

    accs = [r["val_acc"] for r in rows(reference)]
    last_best = max(e for e in range(1, 4) if accs[e - 1] > max(accs[:e - 1], default=-1))
    real_copy = loop.atomic_copy

    def copy(src, dst):
        if Path(dst).name.startswith(kill_at) and load_tensors(src)[1]["step"] == 20 * last_best:
            raise Killed
        real_copy(src, dst)

    monkeypatch.setattr(loop, "atomic_copy", copy)
    cfg = config(tmp_path, "killed", ckpt_every=5, keep_last=20)
    with pytest.raises(Killed):
        fit(cfg)
    monkeypatch.undo()
    run = tmp_path / "killed"
    assert load_tensors(run / "best.safetensors")[1]["epoch"] == last_best  # written before the kill
    fit(cfg, resume=run)
    best = load_tensors(run / "best.safetensors")[1]
    assert best["epoch"] == accs.index(max(accs)) + 1 and best["val_acc"] == max(accs)
    assert same_weights(reference / "best.safetensors", run / "best.safetensors")
    assert rows(reference) == rows(run)


# -- 8: a torn or corrupt metrics.jsonl ------------------------------------------------------------------------------
def test_a_corrupt_line_inside_metrics_jsonl_is_named(reference, tmp_path, capsys):
    run = tmp_path / "torn"
    shutil.copytree(reference, run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(lines[0] + "\n" + "{broken\n" + "\n".join(lines[1:]) + "\n")
    code, _, err = cli(capsys, "train", "--resume", run, "--epochs", "4")
    assert code == 2 and f"{run / 'metrics.jsonl'} line 2 is not a JSON object" in err
    assert len(err.strip().splitlines()) == 1


# -- 9: a corrupted checkpoint ---------------------------------------------------------------------------------------
def test_resume_refuses_a_checkpoint_whose_bytes_changed(reference, tmp_path, capsys):
    run = tmp_path / "flipped"
    shutil.copytree(reference, run)
    raw = bytearray((run / "checkpoint.safetensors").read_bytes())
    raw[-4096] ^= 0x10  # inside the tensor data: still a readable safetensors file
    (run / "checkpoint.safetensors").write_bytes(bytes(raw))
    code, _, err = cli(capsys, "train", "--resume", run, "--epochs", "4")
    assert code == 2 and "fails its SHA-256 check" in err and str(run / "checkpoint.safetensors") in err


# -- 10: temporary files of interrupted writes ------------------------------------------------------------------------
def test_temporaries_of_interrupted_writes_are_removed_when_the_folder_is_opened(reference, tmp_path, capsys, caplog):
    run = tmp_path / "tmp"
    shutil.copytree(reference, run)
    stale = [run / ".checkpoint.safetensors.x1y2.tmp", run / ".metrics.json.ab12.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    code, _, err = cli(capsys, "train", "--resume", run)
    assert code == 0, err
    assert not any(p.exists() for p in stale) and "removed 2 temporary file(s)" in caplog.text
    assert (run / "model.safetensors").exists()  # nothing else went


# -- 11: a full disk -----------------------------------------------------------------------------------------------------
def _mount_tmpfs(path: Path, size: int) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_stops_with_one_line_and_the_run_resumes_once_there_is_space(tmp_path, capsys):
    """A real full file system (tmpfs): room for the first epoch's best and newest checkpoints, not for the second
    epoch's atomic replacement of them. The run stops with one line naming the checkpoint that is kept; with
    more room it resumes and ends exactly where an uninterrupted run ends."""
    flags = [*FLAGS, "--model.dim", "64", "--model.heads", "4"]  # checkpoints large beside the other files
    assert cli(capsys, "train", *flags, "--out_dir", tmp_path, "--name", "ref")[0] == 0
    size = (tmp_path / "ref" / "checkpoint.safetensors").stat().st_size
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, int(size * 2.5) + 64 * 1024):
        pytest.skip("cannot mount a tmpfs here (not root); the error path is checked by the next test")
    try:
        code, _, err = cli(capsys, "train", *flags, "--out_dir", disk, "--name", "full")
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "No space left on device" in err and "the last checkpoint (epoch 1, step 20) is kept" in err
        assert f"vitlab train --resume {disk / 'full'}" in err
        assert load_tensors(disk / "full" / "checkpoint.safetensors")[1]["step"] == 20  # whole, and readable
        subprocess.run(["mount", "-o", f"remount,size={size * 8}", str(disk)], check=True)
        code, _, err = cli(capsys, "train", "--resume", disk / "full")
        assert code == 0, err
        assert same_weights(tmp_path / "ref" / "model.safetensors", disk / "full" / "model.safetensors")
        assert rows(tmp_path / "ref") == rows(disk / "full")
    finally:
        subprocess.run(["umount", str(disk)])


def test_a_failed_write_names_the_checkpoint_kept(tmp_path, monkeypatch, capsys):
    """The same path without a real full disk: the third checkpoint write fails with ENOSPC."""
    import errno

    import vitlab.train.loop as loop

    real, count = loop.save_checkpoint, []

    def failing(path, *args, **kwargs):
        count.append(path)
        if len(count) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(loop, "save_checkpoint", failing)
    code, _, err = cli(capsys, "train", *FLAGS, "--out_dir", tmp_path, "--name", "enospc")
    assert code == 2 and "No space left on device" in err and "(epoch 2, step 40) is kept" in err
    monkeypatch.undo()
    assert cli(capsys, "train", "--resume", tmp_path / "enospc")[0] == 0
