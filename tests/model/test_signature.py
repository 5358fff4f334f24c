"""The exported SavedModel's serving contract, called the way TF Serving and our server call it."""

import numpy as np
import pytest

from imgclf import settings
from imgclf.data import datasets


@pytest.fixture(scope="module")
def loaded(trained_model):
    import tensorflow as tf

    return tf.saved_model.load(f"{trained_model}/saved_model")


@pytest.mark.parametrize("signature,dtype", [(settings.SERVING_SIGNATURE_FLOAT, np.float32),
                                             (settings.SERVING_SIGNATURE_UINT8, np.uint8)])
@pytest.mark.parametrize("channel_axis", [False, True])
def test_endpoints_take_both_dtypes_and_ranks(loaded, small_dataset, signature, dtype, channel_axis):
    images = datasets.load_split(small_dataset, "test")[0][:7]
    x = (images[..., None] if channel_axis else images).astype(dtype)
    import tensorflow as tf

    # The traced endpoint attribute (what our server calls) and the signature map (what TF Serving calls).
    for call in (getattr(loaded, signature), lambda x: loaded.signatures[signature](images=tf.constant(x))):
        out = call(x)
        probs = out[settings.SERVING_OUTPUT_PROBABILITIES].numpy()
        class_id = out[settings.SERVING_OUTPUT_CLASS].numpy()
        assert probs.shape == (7, settings.NUM_CLASSES) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(class_id, probs.argmax(axis=1))


def test_float_and_uint8_agree(loaded, small_dataset):
    images = datasets.load_split(small_dataset, "test")[0][:16]
    a = getattr(loaded, settings.SERVING_SIGNATURE_FLOAT)(images.astype(np.float32))
    b = getattr(loaded, settings.SERVING_SIGNATURE_UINT8)(images)
    np.testing.assert_allclose(a[settings.SERVING_OUTPUT_PROBABILITIES].numpy(),
                               b[settings.SERVING_OUTPUT_PROBABILITIES].numpy(), atol=1e-6)
