"""Export TFLite: dynamic-range and full-integer (int8) models, with size and accuracy vs the SavedModel.

Input: a model directory written by imgclf-train (model.keras, saved_model/) and a
dataset directory (imgclf-ingest). Output directory:
    model_dynamic_range.tflite   int8 weights, float activations; input float32 [N,28,28] raw 0..255
    model_int8.tflite            integer-only ops (TFLITE_BUILTINS_INT8), calibrated on the train
                                 split; input uint8 [N,28,28] raw pixels, output uint8 probabilities
    tflite_report.json           sizes and test accuracies of all three (also returned as a dict)
The output directory appears whole or not at all (written beside it, then renamed);
it must not exist yet, or be empty.
Both models expose one output, the class probabilities; class = argmax.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from imgclf import settings
from imgclf.data import datasets, storage
from imgclf.errors import UserError, run_cli

H, W = settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH
VARIANTS = ("dynamic_range", "int8")


def _interpreter(content: bytes):
    try:
        import tensorflow as tf

        with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated": still present in TF 2.21
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_content=content)
    except AttributeError:  # tf.lite moved out of TensorFlow: the LiteRT package
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_content=content)


def tflite_predict(content: bytes, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Class ids for uint8 images [N,28,28] from a TFLite model (quantising the input when it is integer)."""
    interp = _interpreter(content)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    preds = []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].astype(np.float32)
        if inp["dtype"] in (np.uint8, np.int8):
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        interp.resize_tensor_input(inp["index"], [len(x), H, W])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interp.invoke()
        preds.append(interp.get_tensor(out["index"]).argmax(axis=-1))
    return np.concatenate(preds)


def convert(model_dir: str | Path, representative: np.ndarray | None) -> bytes:
    """TFLite bytes from model.keras; full-integer int8 when representative images are given."""
    import keras
    import tensorflow as tf

    path = Path(model_dir) / "model.keras"
    if not path.is_file():
        raise UserError(f"{model_dir}: no model.keras (is it a model directory written by imgclf-train?)")
    model = keras.models.load_model(path)

    def serve(images):
        return {settings.SERVING_OUTPUT_PROBABILITIES: model(tf.reshape(images, [-1, H, W, 1]), training=False)}

    # Through a fixed-rank SavedModel: converting the concrete function directly leaves
    # READ_VARIABLE ops that the int8 calibrator cannot run (Keras 3 resource variables).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[
        tf.TensorSpec([None, H, W], tf.float32, name=settings.SERVING_INPUT_NAME)])
    with tempfile.TemporaryDirectory(prefix="imgclf-tflite-") as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serve"])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative is not None:
            def samples():
                for image in representative:
                    yield [image[None].astype(np.float32)]

            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        return converter.convert()


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def check_inputs(model_dir: str | Path, dataset_dir: str | Path) -> None:
    """UserError naming the path unless model_dir holds model.keras and saved_model/ and dataset_dir both splits."""
    model = Path(model_dir)
    if not model.is_dir():
        raise UserError(f"{model_dir}: no such model directory (give one written by imgclf-train)")
    for name, is_ok in (("model.keras", Path.is_file), ("saved_model/saved_model.pb", Path.is_file)):
        if not is_ok(model / name):
            raise UserError(f"{model_dir}: no {name} (is it a model directory written by imgclf-train?)")
    if not Path(dataset_dir).is_dir():
        raise UserError(f"{dataset_dir}: no such dataset directory (give one written by imgclf-ingest)")
    for split in ("train", "test"):
        if not (Path(dataset_dir) / f"{split}.npz").is_file():
            raise UserError(f"{dataset_dir}: no {split}.npz (is it a dataset directory written by imgclf-ingest?)")


def export_tflite(model_dir: str, dataset_dir: str, output_dir: str, representative_examples: int = 300,
                  max_test_examples: int = 0, seed: int = settings.SEED) -> dict:
    """Write both TFLite models and the report to output_dir, all or nothing; returns the report dict.

    output_dir must not exist or be empty; everything is written to a temp directory
    beside it and renamed into place only when every conversion and score succeeded.
    """
    from imgclf.model.export import load_serving_fn

    check_inputs(model_dir, dataset_dir)
    if representative_examples < 1:
        raise UserError(f"representative examples {representative_examples}: must be at least 1")
    if max_test_examples < 0:
        raise UserError(f"max test examples {max_test_examples}: must be 0 (all) or more")
    out = storage.check_new_output(output_dir)
    train_images, _ = datasets.load_split(dataset_dir, "train")
    test_images, test_labels = datasets.load_split(dataset_dir, "test")
    if max_test_examples:
        test_images, test_labels = test_images[:max_test_examples], test_labels[:max_test_examples]
    if not len(train_images) or not len(test_labels):
        raise UserError(f"{dataset_dir}: the train and test splits must each hold at least one example")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train_images), min(representative_examples, len(train_images)), replace=False)

    saved_model = Path(model_dir) / "saved_model"
    serving = load_serving_fn(saved_model)
    sm_pred = np.concatenate([serving(test_images[i:i + 512]).argmax(-1) for i in range(0, len(test_images), 512)])
    report = {"test_examples": int(len(test_labels)), "representative_examples": int(len(pick)),
              "saved_model": {"size_bytes": _dir_size(saved_model),
                              "accuracy": float((sm_pred == test_labels).mean())}}
    with storage.atomic_directory(out) as tmp:
        for variant in VARIANTS:
            content = convert(model_dir, train_images[pick] if variant == "int8" else None)
            name = f"model_{variant}.tflite"
            (tmp / name).write_bytes(content)
            pred = tflite_predict(content, test_images)
            report[variant] = {"path": str(out / name), "size_bytes": len(content),
                               "accuracy": float((pred == test_labels).mean()),
                               "agreement_with_saved_model": float((pred == sm_pred).mean())}
        for variant in VARIANTS:
            report[variant]["accuracy_delta"] = report[variant]["accuracy"] - report["saved_model"]["accuracy"]
            report[variant]["size_ratio"] = report[variant]["size_bytes"] / report["saved_model"]["size_bytes"]
        (tmp / "tflite_report.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-export-tflite", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory written by imgclf-train")
    parser.add_argument("--dataset", required=True, help="dataset directory (train split calibrates, test split scores)")
    parser.add_argument("--output", required=True, help="directory for the .tflite files and tflite_report.json")
    parser.add_argument("--representative-examples", type=int, default=300)
    parser.add_argument("--max-test-examples", type=int, default=0, help="0: the whole test split")
    args = parser.parse_args(argv)
    report = export_tflite(args.model, args.dataset, args.output, args.representative_examples,
                           args.max_test_examples)
    print(json.dumps(report, indent=2))
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
