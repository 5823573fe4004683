"""EmbeddingPanel: the map of what the model learned. Each picture is a dot placed by the
trained backbone's features (PCA to 2-D): pictures the model finds alike sit together.

Colour by true class, by the model's answer, or by right/wrong; hovering shows the picture,
clicking opens it large and lists its nearest neighbours as a strip. The features come from
core (``embed_validation_pictures`` / ``embed_paths``) in a background Job; they can be saved
as .npy and CSV for use elsewhere.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QModelIndex, QSize, Qt, Slot
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.locations import unused_folder
from ptm_studio.core.run_models import saved_models
from ptm_studio.core.runs import load_run
from ptm_studio.gui import theme
from ptm_studio.gui.jobs.job import Job, JobContext
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.widgets.job_progress import JobProgress
from ptm_studio.gui.widgets.plot_slot import PlotSlot
from ptm_studio.gui.widgets.prediction_viewer import PredictionViewer
from ptm_studio.gui.widgets.thumbnail_grid import (
    PathListModel,
    ThumbnailCache,
    ThumbnailGrid,
    load_thumbnail,
)

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.embeddings import Embeddings, Projection
    from ptm_studio.core.inference import ModelSource

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
COLOUR_BY = {"true": "True class", "predicted": "The model's answer", "correct": "Right or wrong"}
CORRECTNESS_NAMES = ["right", "wrong", "class not known"]
NEIGHBOURS = 8
TURN_PICTURES = 64  # pictures per turn with the model (the large view's heatmaps wait at most this)
PREVIEW_SIZE = 160
EMPTY_TEXT = (
    "A map of the pictures as the trained model sees them: alike pictures sit together, and "
    "classes the model tells apart form separate groups. Map a run's validation pictures, or "
    "any folder."
)


@dataclass(frozen=True)
class EmbeddingMap:
    embeddings: Embeddings
    projection: Projection
    class_names: tuple[str, ...]


def map_pictures(
    source: ModelSource, inputs: list[Path] | None, context: JobContext
) -> EmbeddingMap:
    """The work of the job: features of the run's validation pictures (``inputs`` None) or of
    the pictures in ``inputs``, a batch at a time (the model takes turns with the heatmaps of
    the large view), projected to 2-D."""
    from ptm_studio.core.embeddings import (  # torch: loaded after the window is up
        Embeddings,
        embed_paths,
        project_2d,
    )
    from ptm_studio.core.engine.setup import validation_records
    from ptm_studio.core.inference import collect_image_paths

    def should_stop() -> bool:
        return context.is_cancelled

    if inputs is None:
        records = validation_records(load_run(source.path))
        paths = [record.path for record in records]
        classes = {record.path: record.class_name or "" for record in records}
    else:
        paths, classes = collect_image_paths(inputs), {}
    parts = []
    for start in range(0, len(paths), TURN_PICTURES):
        with source.use(should_stop) as predictor:
            chunk = paths[start : start + TURN_PICTURES]
            parts.append(
                embed_paths(predictor, chunk, true_classes=classes, should_stop=should_stop)
            )
            class_names, feature_dim = predictor.class_names, predictor.model.feature_dim
        context.progress(min(start + TURN_PICTURES, len(paths)), len(paths))
    if not parts:
        with source.use(should_stop) as predictor:
            class_names, feature_dim = predictor.class_names, predictor.model.feature_dim
    embeddings = Embeddings.joined(parts, feature_dim)
    return EmbeddingMap(embeddings, project_2d(embeddings.features), class_names)


def colour_groups(embeddings: Embeddings, colour_by: str) -> tuple[list[str], np.ndarray]:
    """The legend's names and each picture's group number, for the chosen colouring."""
    if colour_by == "correct":  # a picture without a known class is neither
        groups = np.array(
            [
                2 if not truth else 0 if truth == answer else 1
                for truth, answer in zip(embeddings.true_classes, embeddings.predicted, strict=True)
            ],
            dtype=np.int64,
        )
        return CORRECTNESS_NAMES, groups
    labels = embeddings.true_classes if colour_by == "true" else embeddings.predicted
    names = sorted(set(labels))
    index = {name: position for position, name in enumerate(names)}
    return [name or "(unknown)" for name in names], np.array([index[n] for n in labels])


class EmbeddingPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source: ModelSource | None = None
        self.result: EmbeddingMap | None = None
        self.viewer: PredictionViewer | None = None
        self._neighbour_rows: list[int] = []
        self.job = Job("ptm-embedding", self)
        self.job.succeeded.connect(self.show_map)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.running_changed.connect(self._update_buttons)
        self.summary_label = plain_label(EMPTY_TEXT)
        self.progress = JobProgress(self.job, "pictures", starting_text="Loading the model…")
        self._slot = PlotSlot(self._make_plot)  # the map's plot: made once on screen
        self._slot.setToolTip("Hover over a dot to see its picture; click it to open it.")
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_controls())
        layout.addWidget(self.progress)
        layout.addWidget(self.summary_label)
        body = QHBoxLayout()
        body.addWidget(self._slot, 1)
        body.addLayout(self._build_side())
        layout.addLayout(body, 1)
        layout.addWidget(plain_label("Most alike (click a dot):"))
        layout.addWidget(self.neighbours_grid)
        self._update_buttons()

    def _build_controls(self) -> QHBoxLayout:
        self.run_label = plain_label("No trained model yet.", word_wrap=False)
        self.validation_button = QPushButton("Map the validation pictures")
        self.validation_button.clicked.connect(lambda: self.start(None))
        self.folder_button = QPushButton("Map a folder…")
        self.folder_button.clicked.connect(self.choose_folder)
        self.colour_combo = QComboBox()
        for key, text in COLOUR_BY.items():
            self.colour_combo.addItem(text, key)
        self.colour_combo.setToolTip("What the colours of the dots show.")
        self.colour_combo.currentIndexChanged.connect(self._draw)
        self.save_button = QPushButton("Save features…")
        self.save_button.setToolTip(
            "Write the features as embeddings.npy (for Python) and CSV files (for a "
            "spreadsheet), with the list of files beside them."
        )
        self.save_button.clicked.connect(self.save_features)
        row = QHBoxLayout()
        row.addWidget(self.run_label, 1)
        row.addWidget(self.validation_button)
        row.addWidget(self.folder_button)
        row.addWidget(QLabel("Colour:"))
        row.addWidget(self.colour_combo)
        row.addWidget(self.save_button)
        return row

    def _build_side(self) -> QVBoxLayout:
        self.preview_label = plain_label()
        self.preview_label.setFixedSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_text = plain_label()
        self.preview_text.setFixedWidth(PREVIEW_SIZE)
        self.cache = ThumbnailCache(96, self)
        self.neighbours_model = PathListModel(self.cache, self)
        self.neighbours_grid = ThumbnailGrid(QSize(112, 128), single_row=True)
        self.neighbours_grid.setModel(self.neighbours_model)
        self.neighbours_grid.clicked.connect(self._on_neighbour_clicked)
        side = QVBoxLayout()
        side.addWidget(self.preview_label)
        side.addWidget(self.preview_text)
        side.addStretch(1)
        return side

    # ------------------------------------------------------------------ verbs
    def set_run(self, run_dir: Path | None) -> None:
        """Map with this run's model from now on; the map of the one before goes."""
        self.job.cancel()
        if self.viewer is not None:
            self.viewer.done(0)
            self.viewer = None
        self.result = None
        if self._slot.is_made:
            self.scatter.clear()
            self.legend.clear()
        self.neighbours_model.set_paths([])
        self._say(EMPTY_TEXT)
        has_model = run_dir is not None and bool(saved_models(run_dir))
        from ptm_studio.core.inference import ModelSource  # torch: loaded after the window is up

        self.source = ModelSource(run_dir) if run_dir is not None and has_model else None
        name = Path(run_dir).name if run_dir is not None else ""
        self.run_label.setText(f"Model: {name}" if self.source else "No trained model yet.")
        self._update_buttons()

    def start(self, inputs: list[Path] | None) -> None:
        if self.source is None:
            return
        source = self.source
        self._say("Reading the pictures…")
        self.job.restart(lambda context: map_pictures(source, inputs, context))

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of pictures to map")
        if folder:
            self.start([Path(folder)])

    @Slot()
    def save_features(self) -> None:
        if self.result is None:
            return
        chosen = QFileDialog.getExistingDirectory(self, "Choose where to save the features")
        if not chosen:
            return
        run_name = self.source.path.name if self.source else "pictures"
        folder = unused_folder(Path(chosen), f"features of {run_name}")
        from ptm_studio.core.embeddings import save_embeddings

        try:
            saved = save_embeddings(self.result.embeddings, folder, self.result.projection)
        except OSError as error:
            self._say(f"The features could not be saved in {folder}: {error}")
            return
        self._say(
            f"Saved {saved.features.name}, {saved.features_csv.name}, "
            f"{saved.map_csv.name} and {saved.file_list.name} in {folder}."
        )

    def shutdown(self) -> None:
        if self.viewer is not None:
            self.viewer.done(0)
        self.job.cancel()
        self.job.wait()
        self.cache.clear()
        self.cache.wait_for_done()

    # ------------------------------------------------------------------ showing
    @Slot(object)
    def show_map(self, result: EmbeddingMap) -> None:
        self.result = result
        embeddings = result.embeddings
        text = f"{len(embeddings.paths)} pictures. {result.projection.describe()}"
        if embeddings.unreadable:
            text += f" {len(embeddings.unreadable)} could not be read and are left out."
        self._say(text)
        if not any(embeddings.true_classes):  # a folder without classes: only the answers
            self.colour_combo.setCurrentIndex(self.colour_combo.findData("predicted"))
        self._draw()
        self._update_buttons()

    def _make_plot(self) -> QWidget:
        pg = theme.plotting()

        plot = pg.PlotWidget()
        plot.getPlotItem().hideAxis("left")
        plot.getPlotItem().hideAxis("bottom")
        self.legend = plot.getPlotItem().addLegend(offset=(10, 10))
        self._scatter = pg.ScatterPlotItem(size=9, hoverable=True, hoverSize=14, pxMode=True)
        self._scatter.sigHovered.connect(self._on_hovered)
        self._scatter.sigClicked.connect(self._on_clicked)
        plot.addItem(self._scatter)
        self._plot = plot  # a map shown draws into it, making it first if need be
        return plot

    @property
    def plot(self) -> Any:
        """The map's pyqtgraph PlotWidget (made now if it was not yet)."""
        self._slot.widget()
        return self._plot

    @property
    def scatter(self) -> Any:
        """The map's dots, a pyqtgraph ScatterPlotItem (made now if it was not yet)."""
        self._slot.widget()
        return self._scatter

    @Slot()
    def _draw(self) -> None:
        if self.result is None:
            return
        pg = theme.plotting()

        embeddings, coordinates = self.result.embeddings, self.result.projection.coordinates
        names, groups = colour_groups(embeddings, str(self.colour_combo.currentData()))
        colours = self._colours(names)
        self.scatter.setData(
            x=coordinates[:, 0],
            y=coordinates[:, 1],
            brush=[pg.mkBrush(colours[group]) for group in groups],
            pen=pg.mkPen(None),
            data=list(range(len(embeddings.paths))),
        )
        self.legend.clear()
        for name, colour in zip(names, colours, strict=True):
            sample = pg.ScatterPlotItem(brush=pg.mkBrush(colour), pen=pg.mkPen(None), size=9)
            self.legend.addItem(sample, html.escape(name))  # the legend renders HTML
        self.plot.getPlotItem().autoRange()

    def _colours(self, names: list[str]) -> list[QColor]:
        if names == CORRECTNESS_NAMES:
            return [theme.CORRECT_COLOUR, theme.INCORRECT_COLOUR, QColor("#999999")]
        return [QColor(PALETTE[index % len(PALETTE)]) for index in range(len(names))]

    def _describe(self, row: int) -> str:
        embeddings = self.result.embeddings if self.result else None
        if embeddings is None:
            return ""
        truth = embeddings.true_classes[row]
        answer = f"answer: {embeddings.predicted[row]} ({100 * embeddings.confidence[row]:.0f} %)"
        return f"{embeddings.paths[row].name}\n" + (f"true: {truth}\n" if truth else "") + answer

    @Slot(object, object, object)
    def _on_hovered(self, _item: Any, points: Any, _event: Any) -> None:
        if self.result is None or len(points) == 0:
            return
        row = int(points[0].data())
        image = load_thumbnail(str(self.result.embeddings.paths[row]), PREVIEW_SIZE)
        self.preview_label.setPixmap(QPixmap.fromImage(image))
        self.preview_text.setText(self._describe(row))

    @Slot(object, object, object)
    def _on_clicked(self, _item: Any, points: Any, _event: Any) -> None:
        if self.result is not None and len(points) > 0:
            self.open_picture(int(points[0].data()))

    def open_picture(self, row: int) -> None:
        """Show picture ``row`` large and its nearest neighbours in the strip."""
        if self.result is None:
            return
        from ptm_studio.core.embeddings import nearest_neighbours
        from ptm_studio.core.inference import Prediction

        embeddings = self.result.embeddings
        neighbours = nearest_neighbours(embeddings.features, row, NEIGHBOURS)
        self._neighbour_rows = [neighbour for neighbour, _similarity in neighbours]
        self.neighbours_model.set_paths([str(embeddings.paths[n]) for n in self._neighbour_rows])
        predictions = [
            Prediction(path, (answer,), (float(confidence),))
            for path, answer, confidence in zip(
                embeddings.paths, embeddings.predicted, embeddings.confidence, strict=True
            )
        ]
        if self.viewer is not None:
            self.viewer.done(0)
        self.viewer = PredictionViewer(
            predictions, row, 0.0, self, source=self.source, class_names=self.result.class_names
        )
        self.viewer.show()

    @Slot(QModelIndex)
    def _on_neighbour_clicked(self, index: QModelIndex) -> None:
        if index.isValid() and index.row() < len(self._neighbour_rows):
            self.open_picture(self._neighbour_rows[index.row()])

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self._say(f"No map: {message}")

    @Slot()
    def _on_cancelled(self) -> None:
        self._say("Cancelled; nothing was changed.")

    def _say(self, text: str) -> None:
        self.summary_label.setText(text)

    @Slot()
    def _update_buttons(self) -> None:
        idle = not self.job.is_running
        self.validation_button.setEnabled(idle and self.source is not None)
        self.folder_button.setEnabled(idle and self.source is not None)
        self.save_button.setEnabled(idle and self.result is not None)
