"""Streamlit pages and the small helpers they share; logic lives in the layers below."""
