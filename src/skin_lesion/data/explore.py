"""What is in a dataset: tables, figures and a Markdown report about it.

``scripts/explore_data.py`` uses it. :func:`summarise` turns the image table of
``skin_lesion.data.dataset.Dataset`` (with image sizes added by :func:`with_image_sizes`) into tables;
one function per figure draws it; :func:`write_report` writes the figures and ``report.md``,
which embeds them and gives their numbers. HAM10000 identifies lesions, not patients, so
everything is counted by image and by lesion. Patient metadata (age, sex, site) may be absent,
as in the class-folder layout: its tables and figures are then left out and the report says so.
The report is titled by what the data is (its provenance), not by its layout: the generated
sample has HAM10000's files, and its report says first that it is synthetic.
"""
from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import PercentFormatter
from PIL import Image, UnidentifiedImageError

from skin_lesion.data.dataset import PATIENT_COLUMNS, Dataset, Provenance
from skin_lesion.data.datasets.registry import FORMATS, provenance_for
from skin_lesion.data.files import list_some
from skin_lesion.data.metadata import UNKNOWN, clean_category, parse_age
from skin_lesion.errors import ConfigError, DatasetError
from skin_lesion.io_utils import refuse_overwrite, write_text_atomic
from skin_lesion.markdown import markdown_table
from skin_lesion.plots import save_figure  # also selects matplotlib's Agg backend: no display needed
from skin_lesion.tasks import LabelSpace

log = logging.getLogger(__name__)

REPORT_FILE = "report.md"
SPLIT_ORDER = ("train", "val", "test")
LAYOUT_NAMES = {"kaggle": "Kaggle", "class_folders": "class-folder"}
#: How a diagnosis was confirmed (the table's ``dx_type``), in words; other codes are shown as they are.
CONFIRMATIONS = {"histo": "histopathology", "follow_up": "follow-up", "consensus": "expert consensus",
                 "confocal": "confocal microscopy", "no_biopsy": "no biopsy", "": "not recorded"}
#: Figure file -> title; the title is also the figure's alt text in the report.
FIGURES = {
    "class_counts.png": "Images and lesions per diagnosis",
    "images_per_lesion.png": "Images per lesion",
    "age_by_diagnosis.png": "Age by diagnosis",
    "sex_by_diagnosis.png": "Sex by diagnosis",
    "localization_by_diagnosis.png": "Lesion site by diagnosis",
    "image_sizes.png": "Image sizes",
    "examples.png": "One example image per diagnosis",
    "split_shares.png": "Diagnosis shares per split",
}


# --- reading -------------------------------------------------------------------------------


def image_size(path: str) -> tuple[int, int]:
    """Width and height from the file header; PIL decodes no pixels for this."""
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"Image {path} cannot be read ({error}); replace or remove it.") from error


def with_image_sizes(table: pd.DataFrame) -> pd.DataFrame:
    """The image table with ``width`` and ``height`` columns."""
    sizes = [image_size(path) for path in table["image_path"]]
    return table.assign(width=[width for width, _ in sizes], height=[height for _, height in sizes])


def check_split_matches(table: pd.DataFrame, split: pd.DataFrame, split_file: Path) -> None:
    """A split made from another dataset would describe images this report does not show."""
    unknown = sorted(set(split["image_id"]) - set(table["image_id"]))
    if len(unknown) == len(split):
        raise DatasetError(f"Split file {split_file} lists none of the images in the data folder; "
                           "pass the split made from this --data-dir (scripts/02_prepare_split.py).")
    if unknown:
        log.warning("%d image(s) in split file %s are not in the data folder: %s",
                    len(unknown), split_file, list_some(unknown))


def available_columns(table: pd.DataFrame) -> list[str]:
    """Patient columns with at least one value (the class-folder layout has none)."""
    return [column for column in PATIENT_COLUMNS if table[column].str.strip().ne("").any()]


def patient_values(table: pd.DataFrame) -> pd.DataFrame:
    """Age as a number (NaN when missing); sex and site cleaned, blanks as ``unknown``."""
    return table.assign(age=parse_age(table["age"]), sex=clean_category(table["sex"]),
                        localization=clean_category(table["localization"]))


# --- tables --------------------------------------------------------------------------------


def diagnosis_table(table: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    """Images, their share, lesions and images per lesion for each diagnosis, plus all."""
    images = table["dx"].value_counts().reindex(space.codes, fill_value=0)
    lesions = table.groupby("dx")["lesion_id"].nunique().reindex(space.codes, fill_value=0)
    rows = pd.DataFrame({
        "dx": space.codes,
        "diagnosis": space.display_names,
        "malignant": ["yes" if dx in space.malignant else "no" for dx in space.codes],
        "images": images.to_numpy(),
        "lesions": lesions.to_numpy(),
    })
    total = {"dx": "all", "diagnosis": "", "malignant": "", "images": len(table),
             "lesions": table["lesion_id"].nunique()}
    rows = pd.concat([rows, pd.DataFrame([total])], ignore_index=True)
    rows.insert(4, "share (%)", 100 * rows["images"] / max(len(table), 1))
    rows["images per lesion"] = rows["images"] / rows["lesions"].replace(0, np.nan)
    return rows


def images_per_lesion_table(table: pd.DataFrame) -> pd.DataFrame:
    """How many lesions have 1, 2, 3 ... images (near-copies that a split must keep together)."""
    per_lesion = table.groupby("lesion_id").size()
    lesions = per_lesion.value_counts().sort_index()
    return pd.DataFrame({"images of the lesion": lesions.index, "lesions": lesions.to_numpy(),
                         "images": lesions.index * lesions.to_numpy()})


def age_table(patients: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    """Age summary per diagnosis and for all images, with the missing ages counted."""
    groups = [(dx, patients[patients["dx"] == dx]) for dx in space.codes]
    rows = []
    for name, part in [*groups, ("all", patients)]:
        ages = part["age"].dropna()
        rows.append({"dx": name, "images": len(part), "age missing": len(part) - len(ages),
                     "mean": ages.mean(), "median": ages.median(),
                     "min": ages.min(), "max": ages.max()})
    return pd.DataFrame(rows)


def category_table(patients: pd.DataFrame, column: str, space: LabelSpace) -> pd.DataFrame:
    """Images per value of ``column`` (rows, most common first, unknown last) and diagnosis."""
    counts = pd.crosstab(patients[column], patients["dx"]).reindex(columns=space.codes, fill_value=0)
    counts["all"] = counts.sum(axis=1)
    counts = counts.sort_values("all", ascending=False, kind="stable")
    counts = counts.loc[sorted(counts.index, key=lambda value: value == UNKNOWN)]
    return counts.rename_axis(index=column, columns=None).reset_index()


def size_table(table: pd.DataFrame) -> pd.DataFrame:
    """Images per width x height, most common first."""
    counts = table.groupby(["width", "height"]).size().rename("images").reset_index()
    counts["share (%)"] = 100 * counts["images"] / len(table)
    return counts.sort_values("images", ascending=False, kind="stable").reset_index(drop=True)


def split_table(split: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    """Images and share of each diagnosis in each split, plus all diagnoses and lesions."""
    names = [name for name in SPLIT_ORDER if name in set(split["split"])]
    counts = pd.crosstab(split["dx"], split["split"]).reindex(index=space.codes, columns=names,
                                                             fill_value=0)
    counts.loc["all"] = counts.sum()
    columns = {}
    for name in names:
        columns[f"{name} images"] = counts[name]
        columns[f"{name} share (%)"] = 100 * counts[name] / counts.loc["all", name]
    rows = pd.DataFrame(columns).rename_axis("dx").reset_index()
    lesions = split.groupby("split")["lesion_id"].nunique()
    lesion_row = {"dx": "lesions", **{f"{name} images": lesions[name] for name in names}}
    return pd.concat([rows, pd.DataFrame([lesion_row])], ignore_index=True)


def confirmation_table(table: pd.DataFrame, space: LabelSpace) -> pd.DataFrame:
    """Per diagnosis (and all), its images and the share of them confirmed each way: a label
    from follow-up or consensus is less certain than one from histopathology. A way no image
    of a diagnosis was confirmed is 0 %, not an empty cell."""
    ways = [code for code in CONFIRMATIONS if code in set(table["dx_type"])]
    ways += sorted(set(table["dx_type"]) - set(ways))
    counts = pd.crosstab(table["dx"], table["dx_type"]).reindex(index=space.codes, columns=ways, fill_value=0)
    counts.loc["all"] = counts.sum()
    images = counts.sum(axis=1)
    shares = 100 * counts.div(images.replace(0, np.nan), axis=0)
    shares.columns = [f"{CONFIRMATIONS.get(code, code)} (%)" for code in ways]
    return shares.assign(images=images)[["images", *shares.columns]].rename_axis("dx").reset_index()


def summarise(table: pd.DataFrame, space: LabelSpace, split: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the report, one row or column per diagnosis of ``space``; patient tables
    only for the columns the data has."""
    patients = patient_values(table)
    available = available_columns(table)
    summary = {"diagnoses": diagnosis_table(table, space),
               "images_per_lesion": images_per_lesion_table(table)}
    if table["dx_type"].ne("").any():
        summary["confirmation"] = confirmation_table(table, space)
    if "age" in available:
        summary["age"] = age_table(patients, space)
    for column in ("sex", "localization"):
        if column in available:
            summary[column] = category_table(patients, column, space)
    summary["sizes"] = size_table(table)
    if split is not None:
        summary["splits"] = split_table(split, space)
    return summary


# --- figures -------------------------------------------------------------------------------


def label_axes(axis: plt.Axes, title: str, xlabel: str, ylabel: str) -> None:
    """Every panel gets a title and both axis labels, in one call."""
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)


def with_counts(codes, counts: pd.Series, separator: str = " ") -> list[str]:
    """Tick labels that carry the number of images behind each bar or column."""
    return [f"{code}{separator}(n={counts.get(code, 0)})" for code in codes]


def share_label(count: int, share: float) -> str:
    """A heatmap cell: "0%" for none (a blank cell reads as missing data), "<1%" rather than
    a "0%" that hides a few images."""
    if count == 0:
        return "0%"
    return "<1%" if share < 0.005 else f"{share:.0%}"


def class_counts_figure(diagnoses: pd.DataFrame) -> plt.Figure:
    """Images and lesions side by side: their gap is how many repeat images a class has."""
    rows = diagnoses[diagnoses["dx"] != "all"].sort_values("images", ascending=False, kind="stable")
    long = rows.melt(id_vars="dx", value_vars=["images", "lesions"], var_name="counted",
                     value_name="count")
    figure, axis = plt.subplots(figsize=(7.5, 4))
    sns.barplot(long, x="dx", y="count", hue="counted", ax=axis)
    for bars in axis.containers:
        axis.bar_label(bars, fontsize=7, padding=1)
    axis.margins(y=0.08)
    label_axes(axis, FIGURES["class_counts.png"], "diagnosis", "count")
    return figure


def images_per_lesion_figure(per_lesion: pd.DataFrame) -> plt.Figure:
    """Lesions by their number of images: the repeats a lesion-level split keeps together."""
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    bars = axis.bar(per_lesion["images of the lesion"], per_lesion["lesions"], color="tab:blue")
    axis.bar_label(bars, fontsize=8, padding=1)
    axis.set_xticks(per_lesion["images of the lesion"])
    axis.margins(y=0.08)
    label_axes(axis, FIGURES["images_per_lesion.png"], "images of the lesion", "lesions")
    return figure


def age_figure(patients: pd.DataFrame, space: LabelSpace) -> plt.Figure:
    """One histogram per diagnosis, each on its own count scale so rare classes stay visible."""
    rows = -(-(len(space.codes) + 1) // 4)
    figure, axes = plt.subplots(rows, 4, figsize=(13, 2.9 * rows), sharex=True, squeeze=False)
    oldest = np.nan_to_num(patients["age"].max(), nan=0.0)
    bins = np.arange(0, oldest + 10, 5)  # 5-year steps, as HAM10000 rounds ages
    for axis in axes.flat[len(space.codes) + 1:]:
        axis.set_visible(False)
    for axis, name in zip(axes.flat, [*space.codes, "all"]):
        part = patients if name == "all" else patients[patients["dx"] == name]
        ages = part["age"].dropna()
        sns.histplot(x=ages, bins=bins, ax=axis, color="tab:gray" if name == "all" else "tab:blue")
        label_axes(axis, f"{name}: {len(ages)} with age, {len(part) - len(ages)} missing",
                   "age (years)", "images")
        axis.title.set_fontsize(9)
    figure.suptitle(f"{FIGURES['age_by_diagnosis.png']} (age histograms, 5-year bins)")
    figure.tight_layout()
    return figure


def share_bars(patients: pd.DataFrame, column: str, axis: plt.Axes, space: LabelSpace) -> None:
    """Horizontal bars per diagnosis split into the shares of ``column``'s values."""
    codes = [dx for dx in space.codes if dx in set(patients["dx"])]
    shares = pd.crosstab(patients["dx"], patients[column], normalize="index").reindex(codes)
    left = np.zeros(len(codes))
    for value in shares.columns:
        axis.barh(codes, shares[value], left=left, label=value, height=0.7)
        left += shares[value].to_numpy()
    axis.set_yticks(range(len(codes)), with_counts(codes, patients["dx"].value_counts()))
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.xaxis.set_major_formatter(PercentFormatter(1))
    axis.legend(title=column, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")


def sex_figure(patients: pd.DataFrame, space: LabelSpace) -> plt.Figure:
    """Shares rather than counts, so the small classes compare with the common ones."""
    figure, axis = plt.subplots(figsize=(7, 3.8))
    share_bars(patients, "sex", axis, space)
    label_axes(axis, FIGURES["sex_by_diagnosis.png"], "share of the diagnosis's images", "diagnosis")
    return figure


def localization_figure(localization: pd.DataFrame) -> plt.Figure:
    """Each column is one diagnosis's images over the sites, so classes compare despite nv's size."""
    counts = localization.set_index("localization")
    shares = counts / counts.sum()
    figure, axis = plt.subplots(figsize=(9, 0.4 * len(shares) + 1.8))
    labels = np.vectorize(share_label)(counts.to_numpy(), shares.to_numpy())
    sns.heatmap(shares, annot=labels, fmt="", cmap="Blues", vmin=0, cbar=False, ax=axis,
                annot_kws={"fontsize": 8}, linewidths=0.5,
                xticklabels=with_counts(counts.columns, counts.sum(), "\n"))
    axis.tick_params(axis="y", labelrotation=0)
    label_axes(axis, f"{FIGURES['localization_by_diagnosis.png']} (share of each column's images)",
               "diagnosis", "lesion site")
    return figure


def image_size_figure(sizes: pd.DataFrame, labelled: int = 7) -> plt.Figure:
    """One dot per width x height, larger for more images.

    The most common sizes are named in the legend, as labels beside close dots would overlap;
    seven of them, because matplotlib's eighth colour is the grey used for all the others.
    """
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    area = 30 + 300 * sizes["images"] / sizes["images"].max()
    for row, dot in zip(sizes.head(labelled).itertuples(), area):
        axis.scatter(row.width, row.height, s=dot, alpha=0.7,
                     label=f"{row.width}x{row.height}: {row.images} images")
    rest = sizes.iloc[labelled:]
    if len(rest):
        axis.scatter(rest["width"], rest["height"], s=area.iloc[labelled:], color="tab:gray", alpha=0.5,
                     label=f"{len(rest)} other sizes: {rest['images'].sum()} images")
    axis.set_xlim(0, sizes["width"].max() * 1.15)
    axis.set_ylim(0, sizes["height"].max() * 1.15)
    axis.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left", markerscale=0.5)
    label_axes(axis, f"{FIGURES['image_sizes.png']} ({len(sizes)} distinct)",
               "width (pixels)", "height (pixels)")
    return figure


def example_image(path: str) -> Image.Image:
    """The image decoded at a reduced size: JPEG's draft mode skips most of the work."""
    with Image.open(path) as image:
        image.draft("RGB", (300, 300))
        return image.convert("RGB")


def examples_figure(table: pd.DataFrame, space: LabelSpace) -> plt.Figure:
    """The first image (by image id) of each diagnosis, titled with its full name."""
    figure, axes = plt.subplots(1, len(space.codes), figsize=(2.4 * len(space.codes), 3.2), squeeze=False)
    for axis, dx in zip(axes[0], space.codes):
        part = table[table["dx"] == dx].sort_values("image_id")
        axis.set_xticks([])
        axis.set_yticks([])
        kind = "malignant" if dx in space.malignant else "benign"
        title = f"{dx} ({kind})\n" + "\n".join(textwrap.wrap(space.display_name(dx), 26))
        if part.empty:
            label_axes(axis, title, "no images", "")
            continue
        row = part.iloc[0]
        axis.imshow(example_image(row["image_path"]))
        label_axes(axis, title, f"{row['image_id']}\n{row['width']}x{row['height']} pixels", "")
        axis.title.set_fontsize(8)
        axis.xaxis.label.set_fontsize(8)
    figure.suptitle(FIGURES["examples.png"])
    figure.tight_layout()
    return figure


def split_figure(splits: pd.DataFrame, space: LabelSpace) -> plt.Figure:
    """Grouped bars of each diagnosis's share in each split: a good split keeps them equal."""
    rows = splits[splits["dx"].isin(space.codes)]
    share_columns = [column for column in rows if column.endswith("share (%)")]
    long = rows.melt(id_vars="dx", value_vars=share_columns, var_name="split", value_name="share")
    long["split"] = long["split"].str.replace(" share (%)", "", regex=False)
    figure, axis = plt.subplots(figsize=(7.5, 5))
    sns.barplot(long, y="dx", x="share", hue="split", orient="h", ax=axis)
    for bars in axis.containers:
        axis.bar_label(bars, fmt="%.1f%%", fontsize=7, padding=2)
    axis.set_xlim(0, long["share"].max() * 1.15)
    label_axes(axis, FIGURES["split_shares.png"], "share of the split's images (%)", "diagnosis")
    return figure


def draw_figures(table: pd.DataFrame, summary: dict[str, pd.DataFrame], space: LabelSpace):
    """Yield (file name, figure) for every figure the data allows, one at a time."""
    patients = patient_values(table)
    yield "class_counts.png", class_counts_figure(summary["diagnoses"])
    yield "images_per_lesion.png", images_per_lesion_figure(summary["images_per_lesion"])
    if "age" in summary:
        yield "age_by_diagnosis.png", age_figure(patients, space)
    if "sex" in summary:
        yield "sex_by_diagnosis.png", sex_figure(patients, space)
    if "localization" in summary:
        yield "localization_by_diagnosis.png", localization_figure(summary["localization"])
    yield "image_sizes.png", image_size_figure(summary["sizes"])
    yield "examples.png", examples_figure(table, space)
    if "splits" in summary:
        yield "split_shares.png", split_figure(summary["splits"], space)


# --- the report ----------------------------------------------------------------------------


def cell(value) -> str:
    """Integers as they are, other numbers to one decimal, missing numbers as a dash."""
    if isinstance(value, (float, np.floating)):
        return "-" if np.isnan(value) else f"{value:.1f}"
    return str(value)


def frame_table(frame: pd.DataFrame) -> str:
    """A report table; numeric columns right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(frame[column]) for column in frame]
    rows = ([cell(value) for value in row] for row in frame.itertuples(index=False))
    return markdown_table(frame.columns, rows, numeric)


def figure_link(name: str) -> str:
    """A figure embedded by its relative path, so the report folder can be moved or shared."""
    return f"![{FIGURES[name]}]({name})"


def unavailable(column: str, layout: str) -> str:
    """Why a section has no table or figure, instead of leaving it out silently."""
    if layout == "class_folders":
        return "Not available in this layout: the class-folder layout has no patient metadata."
    return f"Not available: the metadata file has no {column} values."


def missing_metadata(table: pd.DataFrame, summary: dict[str, pd.DataFrame]) -> str:
    """One sentence on the metadata a model must do without, or that there is none."""
    patients = patient_values(table)
    missing = []
    if "age" in summary:
        missing.append(f"age for {patients['age'].isna().sum():,} images")
    for column, name in (("sex", "sex"), ("localization", "lesion site")):
        if column in summary:
            missing.append(f"{name} for {patients[column].eq(UNKNOWN).sum():,} (`{UNKNOWN}` or blank)")
    if not missing:
        return "There is no patient metadata (age, sex, site) in this layout."
    return "Missing metadata: " + ", ".join(missing) + "."


def layout_title(layout: str) -> str:
    """How people call a layout: ``Kaggle``, ``class-folder``, or the dataset's title (``ISIC 2020``)."""
    return LAYOUT_NAMES.get(layout) or (FORMATS[layout].title if layout in FORMATS else layout)


def data_record(dataset: Dataset) -> Provenance:
    """What the data is: as its reader recorded it, else as its label space names it."""
    return dataset.provenance or provenance_for(dataset.label_space)


def grouping_sentence(dataset: Dataset) -> str:
    """What the split keeps together, and why."""
    name = data_record(dataset).name
    if dataset.group_by == "patient_id":
        return f"{name} identifies patients: all images of one patient are the unit the split keeps together."
    return (f"{name} identifies lesions, not patients: one patient may have several lesions, so lesions are "
            "the unit the split keeps together.")


def data_paragraph(dataset: Dataset, split_source: str | None) -> str:
    """Where the data lies, what it is and its licence; synthetic data says so first, in bold."""
    record = data_record(dataset)
    where = (f"Data: `{dataset.source_dir}` ({layout_title(dataset.layout)} layout): {record.name}, from "
             f"{record.source}; licence {record.licence}." + (f" Split: {split_source}." if split_source else ""))
    return f"**{record.caveat()}**\n\n{where}" if record.synthetic else where


def summary_paragraph(table: pd.DataFrame, summary: dict[str, pd.DataFrame], dataset: Dataset) -> str:
    """Size of the data, its class imbalance and what metadata is missing, in a few sentences."""
    rows = summary["diagnoses"].set_index("dx")
    images = rows.loc[rows.index != "all", "images"]
    images = images[images > 0]
    sentences = [
        f"The data holds **{len(table):,} images of {table['lesion_id'].nunique():,} lesions** in "
        f"{len(images)} diagnoses.",
        grouping_sentence(dataset),
        *(["The class-folder layout has no lesion ids, so each image counts as its own lesion."]
          if dataset.layout == "class_folders" else []),
        balance_sentence(images),
        missing_metadata(table, summary),
    ]
    return " ".join(sentences)


def balance_sentence(images: pd.Series) -> str:
    """How much the most common diagnosis outnumbers the rarest; "balanced" within 10 %."""
    common, rare = images.idxmax(), images.idxmin()
    ratio = images[common] / images[rare]
    if ratio < 1.1:
        return f"The classes are balanced: {images[rare]:,} to {images[common]:,} images each."
    return (f"The classes are imbalanced: **{common}** has {images[common]:,} images, "
            f"**{ratio:.1f} times** as many as the rarest, **{rare}** ({images[rare]:,}).")


def confirmation_section(summary: dict[str, pd.DataFrame]) -> list[str]:
    """The confirmation table, or that the data does not say (ISIC 2019, class folders)."""
    if "confirmation" not in summary:
        return ["Not available: the data does not say how its diagnoses were confirmed (no `dx_type`)."]
    return ["Share of each diagnosis's images by how the diagnosis was confirmed (the data's `dx_type`). "
            "Histopathology is the reference standard; labels from follow-up or expert consensus are "
            "less certain.", "", frame_table(summary["confirmation"])]


def age_section(summary: dict[str, pd.DataFrame], layout: str) -> list[str]:
    """The age table and histograms, or why there are none."""
    if "age" not in summary:
        return [unavailable("age", layout)]
    return ["Ages in years, as the data gives them (HAM10000 and ISIC round them to multiples of 5).", "",
            frame_table(summary["age"]), "", figure_link("age_by_diagnosis.png")]


def category_section(summary: dict[str, pd.DataFrame], column: str, figure: str,
                     layout: str) -> list[str]:
    """The counts of sex or lesion site by diagnosis and their figure, or why there are none."""
    if column not in summary:
        return [unavailable(column, layout)]
    return ["Images per value and diagnosis.", "", frame_table(summary[column]), "",
            figure_link(figure)]


def split_section(summary: dict[str, pd.DataFrame], split_source: str) -> list[str]:
    """Class shares per split: a stratified split keeps them close to each other."""
    return ["## Splits", "", f"From {split_source}. Images and shares of each diagnosis per split; "
            "the last row counts lesions (each lesion lies in one split).", "",
            frame_table(summary["splits"]), "", figure_link("split_shares.png"), ""]


def report_text(table: pd.DataFrame, summary: dict[str, pd.DataFrame], dataset: Dataset,
                split_source: str | None = None) -> str:
    """The Markdown report: summary, then one section per table with its figure."""
    per_lesion = table.groupby("lesion_id").size()
    layout = dataset.layout
    sections = [
        f"# {data_record(dataset).name} data exploration", "",
        data_paragraph(dataset, split_source), "",
        summary_paragraph(table, summary, dataset), "",
        "## Diagnoses", "", "Malignant diagnoses are those the binary task counts as malignant.", "",
        frame_table(summary["diagnoses"]), "", figure_link("class_counts.png"), "",
        "## How the diagnoses were confirmed", "", *confirmation_section(summary), "",
        "## Images per lesion", "",
        f"Images per lesion: mean {per_lesion.mean():.2f}, median {per_lesion.median():.0f}, "
        f"max {per_lesion.max()}.", "",
        frame_table(summary["images_per_lesion"]), "", figure_link("images_per_lesion.png"), "",
        "## Age", "", *age_section(summary, layout), "",
        "## Sex", "", *category_section(summary, "sex", "sex_by_diagnosis.png", layout), "",
        "## Lesion site", "",
        *category_section(summary, "localization", "localization_by_diagnosis.png", layout), "",
        "## Image sizes", "", frame_table(summary["sizes"]), "", figure_link("image_sizes.png"), "",
        "## Example images", "", figure_link("examples.png"), "",
    ]
    if "splits" in summary:
        sections += split_section(summary, split_source or "the split")
    return "\n".join(sections).rstrip() + "\n"


def write_report(dataset: Dataset, out_dir: Path, split: pd.DataFrame | None = None,
                 split_source: str | None = None, force: bool = False) -> Path:
    """Write every figure, then ``report.md``; a report on disk always has all its figures.

    Without a split table, the split folders of the class-folder layout are shown, if any.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out-dir {out_dir} is a file; pass a folder for the report.")
    report = out_dir / REPORT_FILE
    refuse_overwrite(report, force, "Report", "--out-dir DIR")
    log.info("%d images of %d lesions in %s", len(dataset.table), dataset.table["lesion_id"].nunique(),
             dataset.source_dir)
    if split is None and dataset.table["split"].ne("").any():
        split, split_source = dataset.table, "the layout's split folders"
    log.info("Reading the sizes of %d images", len(dataset.table))
    table = with_image_sizes(dataset.table)
    summary = summarise(table, dataset.label_space, split)
    for name, figure in draw_figures(table, summary, dataset.label_space):
        save_figure(figure, out_dir / name)
        log.info("Wrote %s", out_dir / name)
    write_text_atomic(report, report_text(table, summary, dataset, split_source))
    return report
