"""The training batches of each epoch, watched: a failed loading process is replaced on the fly.

Also where a resumed run's random-number state is put back, at the one moment that reproduces
the uninterrupted run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ptm_studio.core.checkpoints import restore_rng_state
from ptm_studio.core.data.skipping import forget_skips_inherited
from ptm_studio.core.engine.loading import is_loader_failure, loader_failure_message, shut_down
from ptm_studio.core.engine.tasks import TrainingTask

Result = TypeVar("Result")


class BatchSource:
    """Hands out an epoch's batches from any batch on; falls back to loading in this thread.

    ``report_adjustment(kind, message)`` tells the user when the fallback happens.
    """

    def __init__(
        self,
        task: TrainingTask,
        batch_size: int,
        num_workers: int,
        report_adjustment: Callable[[str, str], None],
    ) -> None:
        self.task = task
        self.batch_size = batch_size
        self.loads_in_main_thread = num_workers == 0
        self.report_adjustment = report_adjustment
        self.pending_rng_state: dict[str, Any] | None = None  # set when resuming
        self.skipped: dict[str, str] = {}  # training pictures skipped, wherever they were loaded

    def epoch(self, epoch_index: int, start_batch: int) -> Iterator[Any]:
        """The epoch's batches from ``start_batch``; if a loading process hangs or dies, load in
        this thread instead and go on from the same batch (the sampler can start anywhere)."""
        batch_index = start_batch
        batches: Iterator[Any] | None = None
        while True:
            try:
                # Creating the iterator waits on persistent loading processes: one that died
                # since the last epoch shows up here, so it is watched too.
                if batches is None:
                    batches = self._iterator(epoch_index, batch_index)
                batch = next(batches)
            except StopIteration:
                return
            except RuntimeError as error:
                if not is_loader_failure(error):
                    raise
                message = loader_failure_message(error, f"epoch {epoch_index + 1}")
            else:
                batch_index += 1
                batch, skipped = batch  # see collate_reporting_skipped
                self.skipped.update(skipped)
                yield batch
                continue
            if batches is not None:
                shut_down(batches)
            self._load_without_workers(message)
            batches = None

    def with_loader_retry(self, work: Callable[[], Result], what: str) -> Result:
        """Run ``work`` (e.g. validation), once more without loading processes if one failed."""
        try:
            return work()
        except RuntimeError as error:
            if not is_loader_failure(error):
                raise
            message = loader_failure_message(error, what)
        self._load_without_workers(message)
        return work()

    def _load_without_workers(self, message: str) -> None:
        if self.loads_in_main_thread:
            raise RuntimeError(message)  # it failed without workers too: not a worker problem
        self.loads_in_main_thread = True
        self.task.load_without_workers()
        self.report_adjustment("data_loader", message)

    def _iterator(self, epoch_index: int, start_batch: int) -> Iterator[Any]:
        """The epoch's batch iterator, with a resumed run's RNG state restored at the right moment.

        Creating a DataLoader iterator draws from the global RNG. A checkpoint taken mid-epoch
        already includes that draw, so its state is restored after the iterator exists; one taken
        at an epoch boundary precedes it, so it is restored first.
        """
        self.task.train_sampler.set_epoch(epoch_index, start_batch * self.batch_size)
        forget_skips_inherited()  # anything left over was reported, or belongs to another run
        if start_batch == 0:
            self._restore_pending_rng_state()
        batches = iter(self.task.train_loader)
        self._restore_pending_rng_state()
        return batches

    def _restore_pending_rng_state(self) -> None:
        if self.pending_rng_state is not None:
            restore_rng_state(self.pending_rng_state)
            self.pending_rng_state = None
