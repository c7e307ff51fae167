"""The scope's exceptions cross process boundaries: pools and schedulers pickle them back."""

from __future__ import annotations

import pickle

import pytest
from assay_scope import ConversionError, MissingParameterError, param_scope


def test_conversion_error_pickles_with_its_message_and_attributes() -> None:
    with pytest.raises(ConversionError) as caught:
        param_scope(epochs="abc").epochs(10)
    error = caught.value
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ConversionError
    assert str(copy) == str(error)
    assert (copy.key, copy.value, copy.expected) == ("epochs", "abc", int)


def test_conversion_error_with_a_reason_pickles_with_the_reason() -> None:
    with pytest.raises(ConversionError) as caught:
        param_scope(epochs=2.5).epochs(10)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert "whole number" in str(copy)


def test_missing_parameter_error_pickles_with_its_key() -> None:
    with pytest.raises(MissingParameterError) as caught:
        param_scope.empty().train.lr()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is MissingParameterError
    assert copy.key == "train.lr"
    assert str(copy) == str(caught.value)
