import numpy as np
import pandas as pd
import pytest

from lsi_app.analysis.review import mislabel_candidates, next_candidate


def make_table() -> pd.DataFrame:
    # Three classes. p_label and margin match the softmax probabilities
    # listed in the comment below.
    return pd.DataFrame(
        {
            "index": range(5),
            "sample_id": ["s0", "s1", "s2", "s3", "s4"],
            "label": [0, 0, 1, 1, 2],
            "class_name": ["cat", "cat", "dog", "dog", "bird"],
            "lsi": [0.2, 3.0, 1.0, 0.5, 4.0],
            "loss": [0.1, 2.3, 0.69, 1.6, np.nan],
            # Probabilities: s0 (.9 .05 .05), s1 (.1 .7 .2), s2 (.3 .5 .2), s3 (.7 .2 .1), s4 (.3 .4 .3).
            "p_label": [0.9, 0.1, 0.5, 0.2, 0.3],
            "predicted": [0, 1, 1, 0, 1],
            "margin": [0.85, -0.6, 0.2, -0.5, -0.1],
            "mislabel_score": [0.02, 6.9, 0.69, 0.8, np.nan],
            "predicted_name": ["cat", "dog", "dog", "cat", "dog"],
        }
    )


def test_candidates_ranked_by_mislabel_score():
    candidates = mislabel_candidates(make_table())

    # Ranking is by score overall: s2 agrees with its label but still
    # ranks above s0; the NaN score comes last.
    assert candidates["sample_id"].tolist() == ["s1", "s3", "s2", "s0", "s4"]
    assert candidates["disagrees"].tolist() == [True, True, False, False, True]


def test_candidates_suggest_prediction_with_probability():
    candidates = mislabel_candidates(make_table()).set_index("sample_id")

    assert candidates.loc["s1", "suggested_label"] == "dog"
    assert candidates.loc["s1", "suggested_code"] == 1
    assert candidates.loc["s1", "p_suggested"] == pytest.approx(0.7)
    assert candidates.loc["s3", "p_suggested"] == pytest.approx(0.7)
    assert candidates.loc["s2", "suggested_label"] == "dog"
    assert candidates.loc["s2", "p_suggested"] == pytest.approx(0.5)
    assert candidates.loc["s4", "p_suggested"] == pytest.approx(0.4)


def test_candidates_without_probabilities_give_nan():
    table = make_table().drop(columns=["margin"])

    candidates = mislabel_candidates(table)

    assert candidates["p_suggested"].isna().all()


def test_candidates_exclude_reviewed_rows():
    state = pd.DataFrame(
        {
            "sample_id": ["s1", "s3", "s2", "s0"],
            "flagged": [False, False, True, False],
            "relabel": [None, "cat", None, ""],
            "review": ["kept", None, None, None],
            "note": [None, None, None, "looks fine"],
        }
    )

    candidates = mislabel_candidates(make_table(), state)

    # s1 was reviewed, s3 relabelled; flagged s2 and noted s0 stay.
    assert candidates["sample_id"].tolist() == ["s2", "s0", "s4"]
    assert candidates["flagged"].tolist() == [True, False, False]


def test_candidates_with_empty_state_keep_all():
    candidates = mislabel_candidates(make_table(), pd.DataFrame())

    assert len(candidates) == 5
    assert "review" in candidates.columns


def test_candidates_limit():
    assert mislabel_candidates(make_table(), limit=2)["sample_id"].tolist() == ["s1", "s3"]
    assert mislabel_candidates(make_table(), limit=0).empty


@pytest.mark.parametrize("limit", [-1, 1.5, True])
def test_candidates_reject_bad_limit(limit):
    with pytest.raises(ValueError, match="limit must be an integer >= 0"):
        mislabel_candidates(make_table(), limit=limit)


def test_candidates_require_score_columns():
    with pytest.raises(ValueError, match=r"lacks columns \['mislabel_score'\]"):
        mislabel_candidates(make_table().drop(columns=["mislabel_score"]))


def test_next_candidate_walks_queue():
    candidates = mislabel_candidates(make_table())

    assert next_candidate(candidates, None) == "s1"
    assert next_candidate(candidates, "s1") == "s3"
    assert next_candidate(candidates, "s0") == "s4"
    assert next_candidate(candidates, "s4") is None


def test_next_candidate_after_removed_id_restarts():
    state = pd.DataFrame({"sample_id": ["s1"], "review": ["mislabeled"]})
    candidates = mislabel_candidates(make_table(), state)

    assert next_candidate(candidates, "s1") == "s3"
    assert next_candidate(candidates.iloc[0:0], "s1") is None
