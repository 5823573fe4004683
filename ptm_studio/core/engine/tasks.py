"""What differs between finetuning and pretraining, behind one interface the Trainer drives.

A task owns its data loaders and the modules it trains, computes the loss of a batch, and says
what an epoch's end means (validation and predictions for finetuning; health signals, k-NN
accuracy and sample views for pretraining). The Trainer owns the loop, optimiser, schedule,
checkpoints and events.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import DataSplit
from ptm_studio.core.engine.distributed import DistributedContext, no_sync_unless_last
from ptm_studio.core.engine.events import (
    EngineEvent,
    FrozenFeaturesMeasured,
    PredictionRecord,
    PredictionsReady,
)
from ptm_studio.core.engine.feature_cache import CachedFeatures, FeatureBatches, FeatureCache
from ptm_studio.core.engine.loading import without_workers
from ptm_studio.core.engine.loops import (
    BatchResult,
    autocast,
    evaluate,
    kept_as_it_was,
    move_batch,
)
from ptm_studio.core.engine.memory import MicroBatching, batch_length
from ptm_studio.core.engine.sampling import ResumableShuffleSampler
from ptm_studio.core.engine.setup import build_data_loaders, build_model, class_counts
from ptm_studio.core.models import BackboneSpec, ImageClassifier
from ptm_studio.core.objectives import build_supervised_loss
from ptm_studio.core.objectives.freezing import is_backbone_frozen, set_backbone_trainable
from ptm_studio.core.objectives.head_fit import fit_linear_head
from ptm_studio.core.objectives.pretrain_health import knn_accuracy


@dataclass(frozen=True)
class TaskEnvironment:
    """What every task needs from the Trainer besides the data split."""

    config: RunConfig
    device: torch.device
    channels_last: bool
    autocast_dtype: torch.dtype | None
    micro_batching: MicroBatching
    download_progress: Callable[[int, int], None] | None = None
    # (kind, message): the task changed how it works to keep going (see TrainingAdjusted).
    report_adjustment: Callable[[str, str], None] = lambda kind, message: None
    distributed: DistributedContext = field(default_factory=DistributedContext)


@dataclass
class EpochOutcome:
    """What an epoch's end measured. NaN where a number does not apply to the task."""

    val_loss: float = float("nan")
    val_accuracy: float = float("nan")
    val_top5_accuracy: float = float("nan")
    per_class: tuple[dict[str, float | str | int], ...] = ()
    confusion: np.ndarray | None = None
    embedding_spread: float = float("nan")
    probe_accuracy: float = float("nan")  # pretraining: a linear classifier on frozen features
    events: list[EngineEvent] = field(default_factory=list)


class TrainingTask:
    """Interface; see SupervisedTask and PretrainTask."""

    class_names: tuple[str, ...]
    spec: BackboneSpec
    weights_note: str
    train_loader: DataLoader | FeatureBatches  # the pictures, or their cached features
    train_sampler: ResumableShuffleSampler
    num_train_images: int
    num_val_images: int
    # Whether the best epoch's weights are kept apart (checkpoints/best) for later use.
    keeps_best_checkpoint = True

    def ranking_accuracy(self, outcome: EpochOutcome) -> float:
        """The accuracy that ranks the epochs (which one is the best, whether the run still
        improves): the validation accuracy."""
        return outcome.val_accuracy

    def trained_module(self) -> nn.Module:
        """Everything the optimiser updates (saved whole in the resumable checkpoint)."""
        raise NotImplementedError

    def optimizer_parts(self) -> tuple[nn.Module, nn.Module]:
        """(head-like part, backbone): the backbone may learn more slowly or be frozen."""
        raise NotImplementedError

    def before_training(self) -> list[EngineEvent]:
        """Work done once before a run's first step (a resumed run has it in its checkpoint),
        and the events that report it."""
        return []

    def prepare_epoch(self, epoch_index: int, *, cached_features: bool = True) -> None:
        """Set the modules up for the epoch. ``cached_features``: a frozen backbone's features
        may be computed once and reused (False for a few trial steps: no whole pass first)."""
        raise NotImplementedError

    def feature_copies(self) -> int:
        """How many frozen epochs compute the frozen network's features (one pass over the
        pictures each) for the later ones to reuse; 0 when it runs every epoch."""
        return 0

    def checked_pictures(self) -> int:
        """How many pictures an epoch's end runs forward to measure the epoch (validation)."""
        raise NotImplementedError

    def forward_alone(self, batch: Any) -> bool:
        """Run a training ``batch`` forward as validation runs (eval mode, no gradients), to
        time it; nothing changes. False when this task validates otherwise (not timed)."""
        return False

    def probe_passes(self) -> int:
        """Passes over the training pictures before the first step (the frozen network's
        statistics and features, for a last layer fitted first); 0 for most runs."""
        return 0

    @contextlib.contextmanager
    def on_random_features(self, batch_size: int) -> Iterator[Any | None]:
        """A batch of random features, trained on as the epochs on cached features train (the
        last layer alone), to time such steps; None when this task caches none. Random
        numbers are drawn: use it inside steps_leaving_no_trace."""
        yield None

    def compute_loss(self, batch: Any) -> BatchResult:
        raise NotImplementedError

    def loss_share(self, batch: Any) -> float:
        """The denominator of the batch's mean loss (see optimization_step): its picture count."""
        return float(batch_length(batch))

    def gradient_sync(self, is_last_piece: bool) -> contextlib.AbstractContextManager:
        """Around each piece of a batch: under torchrun, the gradient exchange waits for the
        last piece (see accumulate_gradients)."""
        return contextlib.nullcontext()

    def release_memory(self) -> None:
        """The run has ended: give back memory kept only to make epochs faster."""

    def load_without_workers(self) -> None:
        """Replace the loaders by ones that load in the training thread (after a worker failed)."""
        raise NotImplementedError

    def end_epoch(self, epoch_index: int, train_loss: float) -> EpochOutcome:
        """What the epoch's end measures (with its extra events, e.g. the predictions)."""
        raise NotImplementedError

    def evaluate(self) -> EpochOutcome:
        """The validation measurements alone, e.g. in the middle of an epoch; the caller keeps
        the modules' train/eval modes and the random state as they were."""
        raise NotImplementedError

    def shareable_weights(self) -> dict[str, torch.Tensor]:
        """What model.safetensors holds: what later runs and predictions start from."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def skipped_files(self) -> dict[str, str]:
        """Training pictures that could not be read during the run, with the reason."""
        return {}

    def load_state(self, weights: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        raise NotImplementedError

    def meta(self) -> dict[str, Any]:
        return {}


class SupervisedTask(TrainingTask):
    """Finetuning a classifier on labelled class folders."""

    def __init__(self, environment: TaskEnvironment, split: DataSplit) -> None:
        config, device = environment.config, environment.device
        self.config, self.split, self.device = config, split, device
        # Validation needs less memory than training (no gradients): it cuts its batches into
        # pieces on its own, and an out-of-memory error there never slows training down.
        self.micro_batching = MicroBatching(device, environment.micro_batching.on_shrunk)
        self.channels_last, self.autocast_dtype = (
            environment.channels_last,
            environment.autocast_dtype,
        )
        self.class_names = split.class_names
        self.model, self.spec, self.weights_note = build_model(
            config, len(split.class_names), environment.download_progress
        )
        self.model.to(device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.distributed = environment.distributed
        self.loaders = build_data_loaders(config, split, self.spec, device, self.distributed)
        if self.loaders.kept_note:
            environment.report_adjustment("decoded_cache", self.loaders.kept_note)
        self.train_loader, self.train_sampler = self.loaders.train, self.loaders.train_sampler
        self.num_train_images, self.num_val_images = len(split.train), len(split.val)
        self.unreadable_for_validation: dict[str, str] = {}
        self.loss_function = build_supervised_loss(config.objective, class_counts(split)).to(device)
        self.feature_cache = FeatureCache(
            self.model.backbone,
            self.loaders.train,
            self.loaders.val,
            device,
            self.autocast_dtype,
            self.channels_last,
            seed=config.seed,
            random_changes=bool(config.data.augmentations),
            on_unavailable=partial(environment.report_adjustment, "feature_cache"),
        )
        self.on_features = False  # this epoch trains the head on cached features
        # What the batches go through: the model, or under torchrun the model in DDP (made
        # again whenever the layers that learn change, see prepare_epoch).
        self.forward_model: nn.Module = self.model
        self._wrapped_for: tuple[bool, ...] | None = None

    def trained_module(self) -> ImageClassifier:
        return self.model

    def optimizer_parts(self) -> tuple[nn.Module, nn.Module]:
        return self.model.head, self.model.backbone

    def before_training(self) -> list[EngineEvent]:
        """probe_then_finetune: fit the last layer on the starting network's frozen features
        (LP-FT), so the first steps of finetuning do not distort them with a random layer's
        gradients, and say what those features are worth alone (k-NN and the fitted layer)."""
        if self.config.model.training_mode != "probe_then_finetune":
            return []
        started = time.perf_counter()
        self.feature_cache.recalibrate_normalisation()
        train = self.feature_cache.every_train_copy()
        if train is None:  # too large for memory (said): every layer starts learning at once
            return []
        fit = fit_linear_head(
            self.model.classifier_layer,
            train.features,
            train.labels,
            train.positions,
            seed=self.config.seed,
            class_weights=getattr(self.loss_function, "weight", None),
        )
        knn, probe = self._frozen_accuracies(train)
        self.feature_cache.drop()  # every layer learns from now on: the features change
        seconds = time.perf_counter() - started
        message = frozen_features_message(
            knn, probe, self.config.model.backbone_learning_rate_factor
        )
        return [FrozenFeaturesMeasured(knn, probe, fit.penalty, seconds, message)]

    def _frozen_accuracies(self, train: CachedFeatures) -> tuple[float, float]:
        """(k-NN, fitted last layer) validation accuracy on the frozen features."""
        val = self.feature_cache.val_features()
        readable = val.positions >= 0
        if not bool(readable.any()):
            return float("nan"), float("nan")
        features, labels = val.features[readable], val.labels[readable]
        knn = knn_accuracy(train.features, train.labels, features, labels)
        with torch.no_grad():
            layer = self.model.classifier_layer
            logits = functional.linear(
                features, layer.weight.float().cpu(), layer.bias.float().cpu()
            )
        probe = float((logits.argmax(dim=1) == labels).float().mean())
        return knn, probe

    def prepare_epoch(self, epoch_index: int, *, cached_features: bool = True) -> None:
        frozen = is_backbone_frozen(self.config.model, epoch_index)
        set_backbone_trainable(self.model.backbone, not frozen)
        self._wrap_for_the_processes()
        features = None
        if frozen and cached_features and self._caches_features():
            features = self.feature_cache.train_loader_for_epoch(epoch_index)
        elif not frozen:
            self.feature_cache.drop()  # the backbone learns: its features change
        self.on_features = features is not None
        self.train_loader = features if features is not None else self.loaders.train
        self._set_modes(frozen)

    def _caches_features(self) -> bool:
        # Under torchrun every process would cache features of its own share, and the head
        # trained on them would differ between processes: the frozen network runs each epoch.
        return self.config.model.cache_frozen_features and not self.distributed.is_distributed

    def feature_copies(self) -> int:
        return self.feature_cache.copies_that_fit() if self._caches_features() else 0

    def checked_pictures(self) -> int:
        return self.num_val_images

    def forward_alone(self, batch: tuple[torch.Tensor, torch.Tensor]) -> bool:
        inputs, _ = move_batch(*batch, self.device, self.channels_last)
        with kept_as_it_was(self.model), torch.inference_mode():
            self.model.eval()
            with autocast(self.device, self.autocast_dtype):
                self.model(inputs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the time is the work's, not its queueing
        return True

    def probe_passes(self) -> int:
        if self.config.model.training_mode != "probe_then_finetune":
            return 0
        return 1 + self.feature_cache.copies_that_fit()  # see before_training

    @contextlib.contextmanager
    def on_random_features(self, batch_size: int) -> Iterator[Any | None]:
        layer = self.model.classifier_layer
        features = torch.randn(batch_size, layer.in_features, device=self.device)
        targets = torch.randint(len(self.class_names), (batch_size,), device=self.device)
        was_on_features, self.on_features = self.on_features, True
        try:
            yield features, targets
        finally:
            self.on_features = was_on_features

    def _set_modes(self, frozen: bool) -> None:
        """Training mode, the backbone in eval mode while frozen (frozen batch-norm statistics
        too). On cached features the backbone does not run at all, so its mode is left as it is
        (setting every module's mode of a resnet took a quarter of a millisecond, 2 % of such
        an epoch; issue 14, B2)."""
        if self.on_features:
            self.model.head.train()
            return
        self.model.train()
        if frozen:
            self.model.backbone.eval()

    def _wrap_for_the_processes(self) -> None:
        """DDP exchanges the gradients of the parameters that learned when it was made: made
        again when that set changes (wrapping copies rank 0's weights to every process,
        which all hold the same ones anyway)."""
        if not self.distributed.is_distributed:
            return
        learning = tuple(parameter.requires_grad for parameter in self.model.parameters())
        if learning != self._wrapped_for:
            self.forward_model = self.distributed.wrap(self.model, self.device)
            self._wrapped_for = learning

    def gradient_sync(self, is_last_piece: bool) -> contextlib.AbstractContextManager:
        return no_sync_unless_last(self.forward_model, is_last_piece)

    def compute_loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> BatchResult:
        # Cached features are already the backbone's output: only the head runs on them.
        inputs, targets = move_batch(
            *batch, self.device, self.channels_last and not self.on_features
        )
        if self.on_features:
            # One small layer on float32 features: autocast's casts of the weights and the
            # inputs cost more than bf16 saves (half the step, measured; issue 14, B2).
            logits = self.model.head(inputs)
            loss = self.loss_function(logits, targets)
        else:
            with autocast(self.device, self.autocast_dtype):
                logits = self.forward_model(inputs)
                loss = self.loss_function(logits.float(), targets)
        correct = int((logits.detach().argmax(dim=1) == targets).sum())
        return BatchResult(loss, correct, len(targets))

    def loss_share(self, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        # A class-weighted cross-entropy averages over the targets' weights, not their count.
        weight = getattr(self.loss_function, "weight", None)
        if weight is None:
            return float(len(batch[1]))
        return float(weight.cpu()[batch[1]].sum())

    def release_memory(self) -> None:
        self.loaders.forget_kept_pictures()
        self.feature_cache.drop()

    def load_without_workers(self) -> None:
        self.loaders.train = without_workers(self.loaders.train)
        self.loaders.val = without_workers(self.loaders.val)
        self.feature_cache.train_loader = self.loaders.train
        self.feature_cache.val_loader = self.loaders.val
        if not self.on_features:
            self.train_loader = self.loaders.train

    def end_epoch(self, epoch_index: int, train_loss: float) -> EpochOutcome:
        outcome, records = self._validate()
        outcome.events.append(PredictionsReady(epoch_index + 1, self.class_names, records))
        return outcome

    def evaluate(self) -> EpochOutcome:
        return self._validate()[0]

    def _validate(self) -> tuple[EpochOutcome, tuple[PredictionRecord, ...]]:
        # On cached features the head alone gives what the whole (frozen) network would.
        result = evaluate(
            self.model.head if self.on_features else self.model,
            self.feature_cache.val_batches() if self.on_features else iter(self.loaders.val),
            self.loaders.val_paths,
            self.class_names,
            self.device,
            None if self.on_features else self.autocast_dtype,  # as in compute_loss
            self.channels_last and not self.on_features,
            self.micro_batching,
            self.distributed,
        )
        for path in result.unreadable:
            self.unreadable_for_validation[path] = (
                "could not be read any more (left out of validation)"
            )
        outcome = EpochOutcome(
            val_loss=result.loss,
            val_accuracy=result.accuracy,
            val_top5_accuracy=result.top5_accuracy,
            per_class=result.per_class,
            confusion=result.confusion,
        )
        return outcome, result.records

    def shareable_weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def skipped_files(self) -> dict[str, str]:
        skipped = dict(self.unreadable_for_validation)
        skipped.update(self.loaders.train_set.skipped)
        return skipped

    def load_state(self, weights: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        self.model.load_state_dict(weights)

    def meta(self) -> dict[str, Any]:
        return {"num_classes": len(self.class_names)}


def frozen_features_message(knn: float, probe: float, backbone_factor: float) -> str:
    if not math.isfinite(probe):
        scored = "There are no validation pictures to say what it scores."
    else:
        scored = (
            f"It gets {100 * probe:.1f} % of the validation pictures right "
            f"(nearest neighbours on the same features: {100 * knn:.1f} %)."
        )
    return (
        "The last layer was fitted on the starting network's features first. "
        f"{scored} Now every layer learns, the network at {backbone_factor:g}× the rate."
    )
