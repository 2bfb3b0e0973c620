"""Sidebar shared by every page: dataset, model and engine settings, and the Compute action."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from lsi_app.engine import Device, Hessian
from lsi_app.store import workspace_dir
from lsi_app.ui.state import SETTINGS_KEY, current_settings
from lsi_app.ui.widgets import escape_markdown

DATASET_HELP = (
    "digits (built in), an image folder (one sub-folder per class), a manifest .csv/.parquet "
    "(path,label[,split]), a text .csv (text,label), embeddings .npy/.npz/.parquet, or "
    "torchvision:NAME:ROOT for CIFAR-10/100, MNIST or FashionMNIST already on disk."
)
MODEL_HELP = (
    "auto (cnn for images, minilm for text, identity for embeddings), cnn, "
    "torchvision:ARCH:WEIGHTS_FILE, torchvision:ARCH (weights already in the torch hub cache), "
    "or a TorchScript file."
)


def render_sidebar() -> None:
    """Draw the settings form; a valid submission becomes this session's settings."""
    settings = current_settings()
    with st.sidebar:
        st.header("Data and model")
        with st.form("settings-form"):
            dataset = st.text_input("Dataset source", settings.dataset, help=DATASET_HELP)
            model = st.text_input("Model source", settings.model, help=MODEL_HELP)
            labels = st.text_input(
                "Labels file", settings.labels or "", help="Labels for an embeddings source (.npy, .npz, .parquet)."
            )
            clusters = st.number_input(
                "k-means clusters",
                min_value=0,
                max_value=10_000,
                value=settings.clusters,
                help="For unlabelled data: score against this many k-means clusters of the features (0 = labels required).",
            )
            structures = [member.value for member in Hessian]
            hessian = st.selectbox(
                "Posterior structure",
                structures,
                index=structures.index(settings.hessian),
                help="full is exact; kron and diag scale to many classes and features.",
            )
            auto_prior = st.checkbox(
                "Choose the prior precision by marginal likelihood",
                value=settings.prior_precision == "auto",
            )
            prior = st.number_input(
                "Prior precision",
                min_value=1e-8,
                value=1.0 if settings.prior_precision == "auto" else float(settings.prior_precision),
                format="%g",
                disabled=False,
                help="Used when the automatic choice is off; larger = stronger regularisation.",
            )
            devices = [member.value for member in Device]
            device = st.selectbox("Device", devices, index=devices.index(settings.device))
            submitted = st.form_submit_button("Compute", type="primary", width="stretch")
        if submitted:
            chosen = replace(
                settings,
                dataset=dataset.strip(),
                model=model.strip() or "auto",
                labels=labels.strip() or None,
                clusters=int(clusters),
                hessian=hessian,
                prior_precision="auto" if auto_prior else float(prior),
                device=device,
            )
            try:
                chosen.validate()
            except ValueError as error:
                st.error(escape_markdown(str(error)))
            else:
                st.session_state[SETTINGS_KEY] = chosen
        st.caption(f"Workspace: `{workspace_dir()}`")
