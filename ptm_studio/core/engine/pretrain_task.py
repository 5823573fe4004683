"""Self-supervised pretraining as a training task: unlabelled views in, a reusable backbone out.

Each epoch ends with label-free health (embedding spread, which falls towards 0 when the
backbone collapses to one output for every picture), a k-nearest-neighbour accuracy on frozen
features when a labelled folder is available to measure with, and a few sample pictures as the
objective sees them (inputs beside reconstructions, or the two views of a contrastive pair).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ptm_studio.core.data import (
    DataSplit,
    ImageDataset,
    build_transform,
    decode_side_for,
    make_split,
    scan_folder,
)
from ptm_studio.core.data.pretrain_views import MultiViewTransform, build_pretrain_transform
from ptm_studio.core.data.skipping import (
    MarkUnreadable,
    SkipUnreadable,
    collate_reporting_skipped,
)
from ptm_studio.core.engine.distributed import no_sync_unless_last
from ptm_studio.core.engine.events import PretrainSamplesReady
from ptm_studio.core.engine.loading import loader_options, without_workers
from ptm_studio.core.engine.loops import autocast, kept_as_it_was
from ptm_studio.core.engine.sampling import ResumableShuffleSampler
from ptm_studio.core.engine.setup import batch_per_process, build_model, resolve_data_dir
from ptm_studio.core.engine.tasks import BatchResult, EpochOutcome, TaskEnvironment, TrainingTask
from ptm_studio.core.objectives.pretrain_health import (
    embedding_spread,
    extract_features,
    knn_accuracy,
    linear_probe_accuracy,
)
from ptm_studio.core.objectives.pretrain_objectives import build_pretrain_objective
from ptm_studio.core.objectives.self_supervised import PretrainObjective, PretrainOutput

SAMPLE_COUNT = 8
SPREAD_SAMPLE_LIMIT = 4096


class PretrainModel(nn.Module):
    """The backbone and the objective's heads, trained together."""

    def __init__(self, backbone: nn.Module, objective: PretrainObjective) -> None:
        super().__init__()
        self.backbone = backbone
        self.objective = objective

    def forward(self, views: list[torch.Tensor]) -> PretrainOutput:
        """The objective on the views; through this call DDP (torchrun) exchanges gradients."""
        output: PretrainOutput = self.objective(self.backbone, views)
        return output


class PretrainTask(TrainingTask):
    """Self-supervised training of a backbone. With labelled pictures to measure on, the epochs
    are ranked by a linear probe on the frozen features (what a later run builds on) and the
    best epoch's backbone is kept apart: that is the one later runs start from. The k-NN
    accuracy beside it only monitors: it can peak in the first epochs (random features already
    separate colours) while finetuning profits from the longer-trained features. Without
    labels, later runs start from the last backbone, as in SimCLR and its kin."""

    train_loader: DataLoader  # always the pictures (two views of each)

    def __init__(self, environment: TaskEnvironment, split: DataSplit) -> None:
        config = environment.config
        self.config, self.device = config, environment.device
        self.channels_last, self.autocast_dtype = (
            environment.channels_last,
            environment.autocast_dtype,
        )
        self.class_names = ()
        classifier, self.spec, self.weights_note = build_model(
            config, 1, environment.download_progress
        )
        objective_settings = config.objective
        self.objective = build_pretrain_objective(
            objective_settings.loss,
            classifier.feature_dim,
            config.data.image_size,
            margin=objective_settings.margin,
            temperature=objective_settings.temperature,
            projection_dim=objective_settings.projection_dim,
            memory_size=objective_settings.memory_size,
        )
        self.objective.attach(classifier.backbone)
        if self.objective.views_per_image > 1:  # pairs are compared within a batch
            environment.micro_batching.smallest_piece = 2
        self.model = PretrainModel(classifier.backbone, self.objective).to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.train_set = self._views_dataset(split)
        self.distributed = environment.distributed
        self.train_sampler = ResumableShuffleSampler(
            len(self.train_set), config.seed, distributed=self.distributed
        )
        self.train_loader = self._loader(self.train_set, self.train_sampler)
        self.num_train_images, self.num_val_images = len(self.train_set), 0
        self.monitor = self._monitor_loaders(split)
        # Every parameter learns from the first step on: wrapped once (torchrun only).
        self.forward_model: nn.Module = self.distributed.wrap(self.model, self.device)
        self.keeps_best_checkpoint = self.monitor is not None
        self.epoch_embeddings: list[torch.Tensor] = []

    # ------------------------------------------------------------------ data
    def _views_dataset(self, split: DataSplit) -> SkipUnreadable:
        image_size = self.config.data.image_size
        transform = build_pretrain_transform(
            image_size,
            mean=self.spec.mean,
            std=self.spec.std,
            strength=self._view_strength(),
        )
        # Labels are ignored: every readable picture of the training part is used.
        views = ImageDataset(
            split.train,
            split.class_names,
            MultiViewTransform(transform, self.objective.views_per_image),
            decode_side_for(image_size),
        )
        return SkipUnreadable(views, resolve_data_dir(self.config))

    def _view_strength(self) -> str:
        strength = self.objective.transform_strength
        if strength == "contrastive" and self.config.objective.keep_colours:
            return "contrastive_keep_colours"
        return strength

    def _loader(self, dataset: Any, sampler: Any = None) -> DataLoader:
        # Under torchrun the training batch is shared out; the monitoring loaders are not
        # (every process measures the same features on all of them).
        batch_size = self.config.data.batch_size
        share = len(dataset)
        if sampler is not None:
            batch_size = batch_per_process(batch_size, self.distributed)
            share = len(sampler)
        # Contrastive losses need at least two pictures in a batch; drop a last batch of one.
        drop_last = sampler is not None and share > batch_size and share % batch_size == 1
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            # The training loader (the one with a sampler) reports skipped files with each batch.
            collate_fn=collate_reporting_skipped if sampler is not None else None,
            **loader_options(self.config, self.device),
        )

    def _monitor_loaders(self, split: DataSplit) -> tuple[DataLoader, DataLoader] | None:
        """Labelled (reference, query) loaders for k-NN accuracy, or None when nothing is labelled."""
        monitor_split = split
        if self.config.data.monitor_dir:
            scan = scan_folder(Path(self.config.data.monitor_dir).expanduser(), verify_images=True)
            monitor_split = make_split(scan, self.config.data.validation_fraction, self.config.seed)
        if len(monitor_split.class_names) < 2 or not monitor_split.val:
            return None
        transform = build_transform(
            self.config.data.image_size, mean=self.spec.mean, std=self.spec.std, train=False
        )
        names = monitor_split.class_names
        size = self.config.data.image_size
        root = Path(self.config.data.monitor_dir or resolve_data_dir(self.config)).expanduser()
        # A picture deleted during the run is left out of the measurement, as in validation.
        reference, query = (
            MarkUnreadable(
                ImageDataset(records, names, transform, decode_side_for(size)), root, size
            )
            for records in (monitor_split.train, monitor_split.val)
        )
        self.num_val_images = len(query)
        return self._loader(reference), self._loader(query)

    def checked_pictures(self) -> int:
        """The labelled pictures' features at each epoch's end: the reference ones (the
        training share, as many as the pictures trained on) and the queried ones."""
        if self.monitor is None:
            return 0
        reference, query = self.monitor
        return len(reference.dataset) + len(query.dataset)  # type: ignore[arg-type]

    def forward_alone(self, batch: tuple[list[torch.Tensor], torch.Tensor]) -> bool:
        """The backbone over one view, as the epoch's end computes the labelled pictures'
        features (extract_features): a fraction of a step over every view."""
        images = self._to_device(batch[0][0])
        with kept_as_it_was(self.model), torch.inference_mode():
            self.model.backbone.eval()
            with autocast(self.device, self.autocast_dtype):
                self.model.backbone(images)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return True

    def load_without_workers(self) -> None:
        self.train_loader = without_workers(self.train_loader)
        if self.monitor is not None:
            self.monitor = (without_workers(self.monitor[0]), without_workers(self.monitor[1]))

    # ------------------------------------------------------------------ training
    def trained_module(self) -> nn.Module:
        return self.model

    def optimizer_parts(self) -> tuple[nn.Module, nn.Module]:
        return self.objective, self.model.backbone

    def prepare_epoch(self, epoch_index: int, *, cached_features: bool = True) -> None:
        self.model.train()
        self.epoch_embeddings = []

    def compute_loss(self, batch: tuple[list[torch.Tensor], torch.Tensor]) -> BatchResult:
        views = [self._to_device(view) for view in batch[0]]
        with autocast(self.device, self.autocast_dtype):
            output = self.forward_model(views)
        self._keep_embeddings(output.embeddings)
        correct = None
        if "rotation_accuracy" in output.extras:
            correct = round(float(output.extras["rotation_accuracy"]) * len(views[0]))
        return BatchResult(output.loss.float(), correct, len(views[0]))

    def gradient_sync(self, is_last_piece: bool) -> contextlib.AbstractContextManager:
        return no_sync_unless_last(self.forward_model, is_last_piece)

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        )

    def _keep_embeddings(self, embeddings: torch.Tensor) -> None:
        if sum(len(chunk) for chunk in self.epoch_embeddings) < SPREAD_SAMPLE_LIMIT:
            self.epoch_embeddings.append(embeddings.detach().float().cpu())

    # ------------------------------------------------------------------ epoch end
    def skipped_files(self) -> dict[str, str]:
        return dict(self.train_set.skipped)

    def end_epoch(self, epoch_index: int, train_loss: float) -> EpochOutcome:
        spread = (
            embedding_spread(torch.cat(self.epoch_embeddings))
            if self.epoch_embeddings
            else float("nan")
        )
        knn, probe = self._feature_accuracies()
        outcome = EpochOutcome(val_accuracy=knn, embedding_spread=spread, probe_accuracy=probe)
        samples = self._sample_views(epoch_index)
        if samples is not None:
            outcome.events.append(samples)
        return outcome

    def evaluate(self) -> EpochOutcome:
        knn, probe = self._feature_accuracies()
        return EpochOutcome(val_accuracy=knn, probe_accuracy=probe)

    def ranking_accuracy(self, outcome: EpochOutcome) -> float:
        """The linear probe's accuracy: how well a classifier on these features does, the
        question a later run asks; the k-NN accuracy where no probe could be fitted."""
        probe = outcome.probe_accuracy
        return probe if math.isfinite(probe) else outcome.val_accuracy

    def _feature_accuracies(self) -> tuple[float, float]:
        """k-NN and linear-probe accuracy of the frozen features on the labelled pictures
        (NaN, NaN without any): one pass over them serves both."""
        if self.monitor is None:
            return float("nan"), float("nan")
        reference_loader, query_loader = self.monitor
        reference, reference_labels = extract_features(
            self.model.backbone, reference_loader, self.device, self.autocast_dtype
        )
        query, query_labels = extract_features(
            self.model.backbone, query_loader, self.device, self.autocast_dtype
        )
        return (
            knn_accuracy(reference, reference_labels, query, query_labels),
            linear_probe_accuracy(reference, reference_labels, query, query_labels),
        )

    def _sample_views(self, epoch_index: int) -> PretrainSamplesReady | None:
        """A few fixed pictures as the objective sees them, for the live strip in the app."""
        count = min(SAMPLE_COUNT, len(self.train_set))
        if count == 0:
            return None
        # Drawing views uses the RNG (manual_seed seeds every CUDA generator too): forked, so
        # showing samples never changes the training run.
        with kept_as_it_was(self.model):
            torch.manual_seed(epoch_index)
            views = [
                torch.stack(view)
                for view in zip(*(self.train_set[i][0] for i in range(count)), strict=True)
            ]
            self.model.eval()
            with torch.inference_mode():
                output = self.objective(
                    self.model.backbone, [self._to_device(view) for view in views]
                )
        if "reconstruction" in output.extras:
            kind, second = "reconstruction", output.extras["reconstruction"]
        elif len(views) == 2:
            kind, second = "pair", views[1]
        else:
            return None
        return PretrainSamplesReady(
            epoch=epoch_index + 1,
            kind=kind,
            first_images=self._to_uint8(views[0]),
            second_images=self._to_uint8(second),
        )

    def _to_uint8(self, images: torch.Tensor) -> np.ndarray:
        mean = torch.tensor(self.spec.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std).view(1, 3, 1, 1)
        pixels = (images.detach().float().cpu() * std + mean).clamp(0, 1) * 255
        return pixels.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()

    # ------------------------------------------------------------------ saving
    def shareable_weights(self) -> dict[str, torch.Tensor]:
        # Only the backbone is worth reusing; the heads stay in the trainer state for resuming.
        return {
            f"backbone.{name}": tensor for name, tensor in self.model.backbone.state_dict().items()
        }

    def extra_state(self) -> dict[str, Any]:
        return {"objective": self.objective.state_dict()}

    def load_state(self, weights: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        prefix = "backbone."
        self.model.backbone.load_state_dict({k[len(prefix) :]: v for k, v in weights.items()})
        if "objective" in extra:
            self.objective.load_state_dict(extra["objective"])

    def meta(self) -> dict[str, Any]:
        return {"objective": self.config.objective.loss, "num_classes": 0}
