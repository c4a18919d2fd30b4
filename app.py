"""Score dermoscopic images in the browser: ``streamlit run app.py`` (or ``make app``).

A page for people who never open a terminal. Choose a trained run (or a ``.h5`` model copied
into ``models/``), upload images, and read for each one the malignant score (calibrated where the
model has a calibration), the label at the run's tuned threshold with that threshold's validation
sensitivity and specificity (with the counts and intervals they rest on), each diagnosis's
probability (multi-class models) and where the model looked (Grad-CAM).

Scoring goes through ``skin_lesion.app_backend``, that is through the functions behind
``scripts/06_infer.py`` and ``07_explain.py``: a file gets the same score here as from the
scripts, and the CSV download is the one 06_infer.py writes. Runs come from ``outputs/`` and
model files from ``models/``, or from ``$SKIN_LESION_OUTPUTS`` and ``$SKIN_LESION_MODELS`` when
set where the server starts; the page offers what lies inside them and nothing else. Uploads stay
in memory. ``.streamlit/config.toml`` binds the server to this machine (127.0.0.1).
"""
from __future__ import annotations

import io
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from skin_lesion import cli
from skin_lesion.data.dataset import PATIENT_COLUMNS
from skin_lesion.data.files import IMAGE_EXTENSIONS
from skin_lesion.data.datasets import data_sheet
from skin_lesion.defaults import UNTUNED_THRESHOLD
from skin_lesion.errors import UserError

REPO = Path(__file__).resolve().parent
FROM_RUN, FROM_FILE = "A trained run", "A model file (.h5)"
DISCLAIMER = ("**Research tool — not a medical device.** Its scores are not clinically validated "
              "and must never be used to diagnose a patient or to decide on treatment. A lesion "
              "that worries you belongs in front of a dermatologist.")

# ----------------------------------------------------------------------------------------------
# The top of the page comes first, so the disclaimer shows while TensorFlow is still starting.

st.set_page_config(page_title="Skin-lesion classifier (research tool)", page_icon="🔬", layout="wide")
st.title("Skin-lesion classifier")
st.warning(DISCLAIMER, icon="⚠️")


@st.cache_resource(show_spinner="Starting TensorFlow (a few seconds, the first time only)…")
def start_tensorflow() -> None:
    """Import TensorFlow once per server, keeping its C++ start-up notices off the terminal."""
    cli.start_tensorflow()


start_tensorflow()
from skin_lesion import app_backend  # noqa: E402  (imports TensorFlow: after the quiet start)
from skin_lesion.app_backend import ModelChoice, ScoredImage, ScoredUploads  # noqa: E402
from skin_lesion.evaluation.threshold import validation_rates  # noqa: E402
from skin_lesion.formatting import score_text  # noqa: E402
from skin_lesion.serving.predictor import Predictor  # noqa: E402

#: The folders runs and model files are read from, set where the server starts, never on the page.
FOLDERS = app_backend.AllowedFolders.from_environment(REPO)

# ----------------------------------------------------------------------------------------------
# Choosing the model: a run from the outputs folder, or a model file from the models folder.


def no_runs_message(folder: Path, runs: list[ModelChoice]) -> str:
    """Why there is nothing to choose, and the two ways to get a model."""
    if runs:
        found = f"None of the {len(runs)} runs in `{folder}` can be used (the sidebar says why)."
    elif folder.is_dir():
        found = f"There are no trained runs in `{folder}`."
    else:
        found = f"There is no folder `{folder}`."
    return (f"{found} To get a model, run `make demo` in the project folder (it trains a small "
            f"demo model in a few minutes), or copy a model file (`.h5`) into `{FOLDERS.models}` and "
            f"choose **{FROM_FILE}** above.")


def choose_run() -> ModelChoice | None:
    """A completed run, newest first; runs that cannot be used are listed with the reason."""
    folder = FOLDERS.outputs
    st.sidebar.caption(f"Runs are read from `{folder}` and its subfolders, set where the server starts "
                       f"(`{app_backend.OUTPUTS_VARIABLE}`).")
    runs = app_backend.run_choices(folder)
    usable = [run for run in runs if not run.problem]
    if len(usable) < len(runs):
        with st.sidebar.expander(f"{len(runs) - len(usable)} run(s) cannot be used"):
            for run in runs:
                if run.problem:
                    st.markdown(f"**{run.path.name}**: {run.problem}")
    if not usable:
        st.info(no_runs_message(folder, runs))
        return None
    return st.selectbox("Run (newest first)", usable, format_func=lambda run: run.label, key="run")


def choose_model_file() -> ModelChoice | None:
    """A model from the models folder (a ``.h5`` or an 08_export.py export): chosen from a list,
    never typed, so the page loads nothing from elsewhere on the server."""
    files = app_backend.model_file_choices(FOLDERS.models)
    if not files:
        st.info(f"Copy a model file (`.h5`, with its `threshold.json` and `calibration.json` if you "
                f"have them, or an export folder of `08_export.py`: `.keras`, `.tflite`, `.onnx`, SavedModel) "
                f"into `{FOLDERS.models}` (a subfolder per model is fine).")
        return None
    choice = st.selectbox(f"Model files in {FOLDERS.models}", files, format_func=lambda file: file.label,
                          key="model_file", help="A model copied from another machine. A .h5's threshold.json and "
                                                 "calibration.json are used if they lie beside it; an "
                                                 "export's come from its description.json.")
    if choice.problem:
        st.error(f"Cannot use that model file: {choice.problem}.")
        return None
    return choice


def choose_model() -> ModelChoice | None:
    """Step 1: the model, from a trained run or from a model file; None until there is one."""
    st.subheader("1. Choose a model")
    source = st.radio("Take the model from", [FROM_RUN, FROM_FILE], horizontal=True, key="source",
                      label_visibility="collapsed")
    return choose_run() if source == FROM_RUN else choose_model_file()


@st.cache_resource(show_spinner="Loading the model…", max_entries=3)
def cached_predictor(_choice: ModelChoice, key: tuple) -> Predictor:
    """Loaded once per model version (``key``: its files and their modification times), so
    further images are scored without loading it again."""
    return app_backend.predictor_for(_choice)


def load(choice: ModelChoice) -> Predictor | None:
    """The chosen model, or None with the reason on the page."""
    try:
        return cached_predictor(choice, (choice.kind, str(choice.path), app_backend.stamp(choice)))
    except UserError as error:
        st.error(f"The model cannot be loaded: {error}")
        return None


# ----------------------------------------------------------------------------------------------
# What the model is, and how to read its results.


def operating_point(predictor: Predictor) -> str:
    """The threshold with its validation sensitivity and specificity, and the counts and
    intervals they rest on (a perfect 1.000 on 19 images is not a perfect test)."""
    record = predictor.threshold_record
    if not record:
        return (f"default threshold (**not tuned, {UNTUNED_THRESHOLD}**; its sensitivity and specificity "
                "are unknown)")
    return f"threshold **{predictor.threshold:.3f}** (tuned: {validation_rates(record)})"


def score_meaning(predictor: Predictor) -> str:
    """What the malignant score is: a calibrated probability only when a calibration was fitted."""
    space = predictor.task.label_space
    malignant = one_of([space.display_name(code) for code in space.malignant_codes])
    if predictor.calibration.fitted:
        return (f"The model's calibrated probability that the lesion is malignant: {malignant}. "
                "Calibrated on validation images: of the lesions scored about 0.30 there, about 30 % "
                "were malignant.")
    return (f"The model's raw output for a malignant lesion: {malignant}. This model has no "
            "calibration, so a score of 0.30 need not mean that 30 % of such lesions are malignant.")


def one_of(names: list[str]) -> str:
    """``a, b or c``."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def describe_model(choice: ModelChoice, predictor: Predictor) -> None:
    """What the model reads and how it decides, with what had to be assumed about it."""
    space = predictor.task.label_space
    task = ("Tells benign from malignant lesions" if predictor.task.is_binary
            else f"Tells the {len(space.codes)} {space.name} diagnoses apart")
    metadata = " and the patient's age, sex and lesion site" if predictor.uses_metadata else ""
    st.markdown(f"{task} from {predictor.img_size}×{predictor.img_size}-pixel images{metadata}. "
                f"Label *malignant* when the malignant score is at or above the {operating_point(predictor)}.")
    st.caption(f"Model file: {predictor.model_file}")
    data = app_backend.trained_on(choice)
    if data.synthetic:
        st.warning(data.caveat())
    for note in predictor.notes:
        st.info(note)
    with st.expander("How to read the results"):
        st.markdown(
            f"* **Malignant score** (0 to 1). {score_meaning(predictor)} Scores that round to 1 or 0 "
            "are shown as > 0.999 or < 0.001 (the CSV keeps every digit).\n"
            "* **Label**: *malignant* when the score is at or above the threshold, else *benign*. "
            "The threshold was chosen on validation images. **Sensitivity** is the share of "
            "malignant lesions it caught there, **specificity** the share of benign lesions it "
            "left alone; with few validation images they are uncertain, and the 95 % confidence "
            "intervals (Wilson) say how much.\n"
            "* **Grad-CAM**: red and yellow mark the parts of the image that pushed the model most "
            "towards its label. It shows where the model looked, not whether it is right: check "
            "that it looked at the lesion, not at hair, a ruler or the image border.\n"
            "* **Models of several diagnoses** also show the probability of each; the malignant "
            "score is the sum of the red bars.\n"
            f"* The model learnt from {data_sheet(data).summary}. Other cameras, skin types or "
            "clinical photographs can make it fail without warning.")


def patient_fields(predictor: Predictor) -> dict | None:
    """Age, sex and site for models that use them ('unknown' unless given); None otherwise."""
    if not predictor.uses_metadata:
        return None
    st.subheader("2. About the patient (optional)")
    st.caption("This model also uses the patient's age, sex and lesion site; the same values apply "
               "to every image below. Leave them unknown if you do not know them.")
    age_column, sex_column, site_column = st.columns(3)
    age = age_column.number_input("Age (years)", min_value=0, max_value=120, value=None, step=1,
                                  placeholder="unknown", key="age")
    sex = sex_column.selectbox("Sex", ["unknown", *predictor.encoding.sex], key="sex")
    site = site_column.selectbox("Lesion site", ["unknown", *predictor.encoding.localization], key="site")
    return dict(zip(PATIENT_COLUMNS, ("" if age is None else age, sex, site)))


# ----------------------------------------------------------------------------------------------
# The results: problems first, then a table of several images, then each image.


def show_problems(scored: ScoredUploads) -> None:
    """One message per file that was not scored, naming it."""
    for name in scored.unsupported:
        st.error(f"**{name}** was not scored: it is not an image file this page reads. Upload JPEG "
                 f"or PNG images ({', '.join(IMAGE_EXTENSIONS)}).")
    for image in scored.images:
        if image.error:
            st.error(f"**{image.name}** was not scored: it could not be read as an image (is it "
                     f"damaged, or another kind of file renamed?). The decoder said: {image.error}")
    if scored.unexplained:
        st.warning(f"The images are scored, but without Grad-CAM maps: {scored.unexplained}")


def show_table(scored: ScoredUploads) -> None:
    """All files in one table: the CSV scripts/06_infer.py writes for them, and its download."""
    table = pd.read_csv(io.BytesIO(scored.csv), dtype=str, keep_default_na=False)
    numbers = [column for column in table if column in ("malignant_score", "ood_distance") or column.startswith("prob_")]
    table[numbers] = table[numbers].apply(pd.to_numeric, errors="coerce")  # unreadable files: blank
    headers = {"path": "File", "malignant_score": "Malignant score", "label": "Label", "top_class": "Top class",
               "metadata_note": "Patient data", "error": "Error", "out_of_distribution": "Out of distribution",
               "ood_distance": "Feature distance", "ood_reason": "Why out of distribution"}
    columns = {column: st.column_config.NumberColumn(headers.get(column, column)) for column in numbers}
    columns.update({column: headers[column] for column in table if column in headers and column not in numbers})
    scores = [column for column in numbers if column != "ood_distance"]
    shown = (table.style.format(lambda value: "" if pd.isna(value) else score_text(value), subset=scores)
             .format("{:.1f}", subset=[column for column in numbers if column == "ood_distance"], na_rep=""))
    st.dataframe(shown, hide_index=True, column_config=columns)  # shown as text, sorted as numbers
    st.download_button("Download this table (CSV)", scored.csv, file_name="predictions.csv",
                       mime="text/csv", on_click="ignore", key="download",
                       help="The same columns and values as scripts/06_infer.py writes.")


def diagnosis_chart(row: dict, predictor: Predictor) -> alt.Chart:
    """The diagnoses' probabilities as bars, malignant diagnoses in red, in the model's order."""
    space = predictor.task.label_space
    data = pd.DataFrame({
        "diagnosis": [f"{space.display_name(code)} ({code})" for code in space.codes],
        "probability": [row[f"prob_{code}"] for code in space.codes],
        "shown": [score_text(row[f"prob_{code}"]) for code in space.codes],
        "kind": ["malignant" if code in space.malignant else "benign" for code in space.codes]})
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability"),
        y=alt.Y("diagnosis:N", sort=None, title=None, axis=alt.Axis(labelLimit=420)),
        color=alt.Color("kind:N", title=None, scale=alt.Scale(domain=["malignant", "benign"],
                                                              range=["#d62728", "#1f77b4"])),
        tooltip=["diagnosis", alt.Tooltip("shown:N", title="probability")])
    labels = bars.mark_text(align="left", dx=3).encode(text="shown:N", color=alt.value("#444"))
    return (bars + labels).properties(height=alt.Step(26), title="Probability of each diagnosis")


def explained_class(predictor: Predictor, row: dict) -> str:
    """What the Grad-CAM map is evidence for: the label, or the top diagnosis."""
    if predictor.task.is_binary:
        return row["label"]
    return predictor.task.label_space.display_name(row["top_class"]).lower()


def show_unfamiliar(row: dict) -> None:
    """In place of a verdict: why the image is unlike anything the model learnt from."""
    st.warning(f"**Out of distribution: no verdict.** {row['ood_reason'][0].upper()}{row['ood_reason'][1:]}. "
               "This image is unlike the images the model learnt from, so its score "
               f"({score_text(row['malignant_score'])}) says nothing about it. Upload a dermoscopic image "
               "of a skin lesion.", icon="⚠️")


def show_verdict(row: dict, predictor: Predictor) -> None:
    """The score, the label and the threshold that decided it; a warning instead for an image
    out of distribution."""
    if row.get("out_of_distribution"):
        show_unfamiliar(row)
        return
    score, malignant = row["malignant_score"], row["label"] == "malignant"
    malignant_codes = predictor.task.label_space.malignant_codes
    st.metric("Malignant score", score_text(score), help=score_meaning(predictor))
    label = ":red-background[**malignant**]" if malignant else ":blue-background[**benign**]"
    st.markdown(f"Label: {label} — the score is {'at or above' if malignant else 'below'} the "
                f"{operating_point(predictor)}.")
    if not predictor.task.is_binary:
        code = row["top_class"]
        balanced = (" — the diagnosis most probable relative to how common it is, so a rare one can "
                    "top a more probable common one" if predictor.calibration.class_prior else "")
        st.markdown(f"Top diagnosis: **{predictor.task.label_space.display_name(code)}** ({code}, "
                    f"probability {score_text(row[f'prob_{code}'])}){balanced}. The label comes from the "
                    f"malignant score ({' + '.join(malignant_codes)}), not from this diagnosis.")
    if predictor.uses_metadata and row["metadata_note"]:
        st.caption(f"Patient data: {row['metadata_note']} (scored as unknown).")


def show_image(image: ScoredImage, predictor: Predictor) -> None:
    """The image beside its Grad-CAM map and its verdict; for multi-class models the diagnoses below."""
    st.subheader(image.name)
    photo, heat, verdict = st.columns([1, 1, 1.3])
    photo.image(image.image, caption="Uploaded image", width="stretch")
    if image.heatmap is not None:
        caption = ("Grad-CAM of an image unlike the training data: not a finding" if image.row.get("out_of_distribution")
                   else f"Grad-CAM: where the model saw evidence for {explained_class(predictor, image.row)}")
        heat.image(image.heatmap, width="stretch", caption=caption)
    with verdict:
        show_verdict(image.row, predictor)
    if not predictor.task.is_binary:
        st.altair_chart(diagnosis_chart(image.row, predictor), width="stretch")


def show_results(scored: ScoredUploads, predictor: Predictor) -> None:
    """Problems first (they are easy to miss further down), then the table, then each image."""
    show_problems(scored)
    if len(scored.images) > 1 and not all(image.error for image in scored.images):
        st.subheader(f"All {len(scored.images)} images")
        show_table(scored)
    for image in scored.images:
        if not image.error:
            show_image(image, predictor)


# ----------------------------------------------------------------------------------------------
# The page, top to bottom.


def main() -> None:
    choice = choose_model()
    predictor = load(choice) if choice else None
    if predictor is None:
        return
    describe_model(choice, predictor)
    patient = patient_fields(predictor)
    st.subheader(f"{3 if patient is not None else 2}. Upload images")
    files = st.file_uploader("Dermoscopic images (JPEG or PNG); several at once are fine",
                             accept_multiple_files=True, key="images")
    if not files:
        return
    with st.spinner(f"Scoring {len(files)} file(s)…"):
        scored = app_backend.score_uploads(predictor, [(file.name, file.getvalue()) for file in files], patient)
    show_results(scored, predictor)


main()
