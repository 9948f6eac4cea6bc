"""
Title: A bert4keras multi-label classifier trained with the toolkit's loss
Description: keep a bert4keras 0.11.5 script; swap in this toolkit's loss, metrics and predictor.

What it does
------------
Builds a BERT text classifier with bert4keras' own `build_transformer_model`,
from a Google-format checkpoint or, by default, as a tiny BERT with random
weights, and trains it with the toolkit's multi-label
categorical crossentropy and its threshold-0 metrics (micro and macro F1,
subset accuracy) on a small generated task: texts that mention 0 to 3 of five
topics among filler words, with the topics as labels. It keeps the weights of
the epoch with the best validation micro F1, then serves the model through
`TFKerasMultilabelPredictor`: saved, loaded back, and used on new texts.
No threshold is tuned: a label applies when its logit is > 0.

How to run
----------
    pip install "tf-keras==2.21.*" && pip install --no-deps bert4keras==0.11.5
    python examples/bert4keras_interop.py               # a tiny random BERT: no download
    python examples/bert4keras_interop.py ~/models/uncased_L-2_H-128_A-2   # any Google-format BERT

The first form runs anywhere in about a minute on 2 CPU cores: with no
checkpoint folder given, the script writes the `bert_config.json` of a tiny
BERT (2 layers, hidden size 32) and a `vocab.txt` of the task's words, and
bert4keras builds that BERT with random weights
(`build_transformer_model(config_path, checkpoint_path=None)`). A checkpoint
folder holds `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*`.

Expected score
--------------
The tiny random BERT, trained from scratch (8 epochs, Adam at 1e-3), reaches
validation micro F1 = 0.986 after epoch 4, and micro F1 = 1.000,
macro F1 = 1.000 and subset accuracy = 1.000 first after epoch 8 (measured:
docs/demo_scores.json; `summary.json` lists every epoch's scores); the texts
with no topic get no label. The task is keyword spotting: this checks that the
pieces fit together, it is not a benchmark.
"""

import argparse
import json
import tempfile
from pathlib import Path

from toolkit.compat import bert4keras as zlpr

# bert4keras 0.11.5 on TensorFlow 2.21 needs tf-keras and the legacy optimizer
# base class: set both up before TensorFlow or bert4keras are imported.
zlpr.prepare_environment()

import numpy as np  # noqa: E402
from bert4keras.backend import keras  # noqa: E402
from bert4keras.models import build_transformer_model  # noqa: E402
from bert4keras.optimizers import Adam  # noqa: E402
from bert4keras.snippets import DataGenerator, sequence_padding  # noqa: E402
from bert4keras.tokenizers import Tokenizer  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402

TOPICS = {
    "sports": ["football", "tennis", "coach", "stadium"],
    "politics": ["election", "senate", "minister", "vote"],
    "science": ["physics", "laboratory", "experiment", "theory"],
    "music": ["guitar", "concert", "album", "singer"],
    "travel": ["flight", "hotel", "beach", "passport"],
}
LABELS = list(TOPICS)
FILLER_WORDS = ["the", "a", "today", "people", "said", "new", "about", "very", "with", "and", "after", "some"]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_LENGTH = 32
# The bert_config.json of the tiny BERT (its vocab_size is the vocabulary's).
TINY_BERT_CONFIG = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
}


# --------------------------------------------------------------------------
# Data: texts mentioning 0 to 3 topics, labelled with those topics
# --------------------------------------------------------------------------


def make_examples(count, rng):
    """`count` pairs `(text, multi-hot label vector)`; about 1 text in 10 has no topic."""
    examples = []
    for _ in range(count):
        topic_count = rng.choice(4, p=[0.1, 0.4, 0.3, 0.2])
        topics = rng.choice(len(LABELS), size=topic_count, replace=False)
        words = list(rng.choice(FILLER_WORDS, size=rng.integers(4, 9)))
        for topic in topics:
            words += list(rng.choice(TOPICS[LABELS[topic]], size=rng.integers(1, 3), replace=False))
        rng.shuffle(words)
        target = np.zeros(len(LABELS), dtype=np.float32)
        target[topics] = 1.0
        examples.append((" ".join(words), target))
    return examples


class TextEncoder:
    """Texts to bert4keras inputs `[token_ids, segment_ids]`; also the predictor's preprocessor."""

    def __init__(self, tokenizer, max_length):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts):
        token_ids, segment_ids = zip(*(self.tokenizer.encode(text, maxlen=self.max_length) for text in texts))
        return [sequence_padding(token_ids), sequence_padding(segment_ids)]


class ExampleGenerator(DataGenerator):
    """bert4keras data generator: batches of `([token_ids, segment_ids], labels)` tuples."""

    def __init__(self, examples, encoder, batch_size):
        super().__init__(examples, batch_size=batch_size)
        self.encoder = encoder

    def __iter__(self, random=False):
        batch = []
        for is_end, example in self.sample(random):
            batch.append(example)
            if len(batch) == self.batch_size or is_end:
                texts, targets = zip(*batch)
                yield self.encoder(texts), np.stack(targets)
                batch = []


# --------------------------------------------------------------------------
# Model: bert4keras' BERT, a linear head, raw logits
# --------------------------------------------------------------------------


def build_classifier(config_path, checkpoint_path, num_labels):
    """bert4keras' BERT with a linear head; random weights when `checkpoint_path` is None."""
    bert = build_transformer_model(config_path, checkpoint_path)
    first_token = bert.output[:, 0]  # the [CLS] vector
    logits = keras.layers.Dense(num_labels, name="logits")(first_token)  # no sigmoid: the loss takes logits
    return keras.models.Model(bert.inputs, logits)


# --------------------------------------------------------------------------
# Evaluation: scikit-learn on the predictor's decisions (logit > 0)
# --------------------------------------------------------------------------


def evaluate(predictor, examples):
    texts, targets = zip(*examples)
    targets = np.stack(targets).astype(int)
    decisions = predictor.predict(list(texts))
    return {
        "micro_f1": float(f1_score(targets, decisions, average="micro", zero_division=0.0)),
        "macro_f1": float(f1_score(targets, decisions, average="macro", zero_division=0.0)),
        "subset_accuracy": float(accuracy_score(targets, decisions)),
    }


class Evaluator(keras.callbacks.Callback):
    """Scores the validation set after each epoch; puts back the best epoch's weights at the end."""

    def __init__(self, predictor, validation_examples):
        super().__init__()
        self.predictor = predictor
        self.validation_examples = validation_examples
        self.best_micro_f1 = -1.0
        self.best_weights = None
        self.history = []  # each epoch's validation scores

    def on_epoch_end(self, epoch, logs=None):
        scores = evaluate(self.predictor, self.validation_examples)
        self.history.append(scores)
        if scores["micro_f1"] > self.best_micro_f1:
            self.best_micro_f1 = scores["micro_f1"]
            self.best_weights = self.model.get_weights()
        print(f"  validation: {json.dumps(scores)}; best micro F1 {self.best_micro_f1:.4f}")

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


# --------------------------------------------------------------------------
# Training, inference
# --------------------------------------------------------------------------


def write_tiny_bert_files(directory):
    """`bert_config.json` and `vocab.txt` of a tiny BERT whose vocabulary holds every word of the task."""
    words = sorted(set(FILLER_WORDS) | {word for keywords in TOPICS.values() for word in keywords})
    vocabulary = SPECIAL_TOKENS + words
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "bert_config.json"
    config = dict(TINY_BERT_CONFIG, vocab_size=len(vocabulary))
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    vocab_path = directory / "vocab.txt"
    vocab_path.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    return str(config_path), str(vocab_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("checkpoint_dir", nargs="?", help="Google-format BERT folder; a tiny random one if left out")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, help="default 1e-3 for the random BERT, 2e-5 otherwise")
    parser.add_argument(
        "--output-dir", help="where the predictor is saved; if left out, a temporary folder deleted at the end"
    )
    args = parser.parse_args(argv)
    if args.output_dir:
        train_and_serve(args, Path(args.output_dir))
        return
    with tempfile.TemporaryDirectory(prefix="bert4keras_interop_") as temporary:
        train_and_serve(args, Path(temporary))


def train_and_serve(args, output_dir):
    """Train on the generated texts, keep the best epoch, save the predictor in `output_dir`, load it back and
    predict."""
    if args.checkpoint_dir:
        checkpoint_dir = Path(args.checkpoint_dir)
        config_path = str(checkpoint_dir / "bert_config.json")
        checkpoint_path = str(checkpoint_dir / "bert_model.ckpt")
        vocab_path = str(checkpoint_dir / "vocab.txt")
        learning_rate = args.learning_rate or 2e-5
    else:
        config_path, vocab_path = write_tiny_bert_files(output_dir / "tiny_bert")
        checkpoint_path = None  # bert4keras draws the weights at random
        learning_rate = args.learning_rate or 1e-3

    rng = np.random.default_rng(0)
    train_examples = make_examples(800, rng)
    validation_examples = make_examples(200, rng)

    keras.utils.set_random_seed(0)  # the random BERT, the head and the batch order
    encoder = TextEncoder(Tokenizer(vocab_path, do_lower_case=True), MAX_LENGTH)
    model = build_classifier(config_path, checkpoint_path, len(LABELS))
    model.compile(
        optimizer=Adam(learning_rate),
        loss=zlpr.MultilabelCategoricalCrossentropy(),
        metrics=[zlpr.MultilabelF1Score(average="micro"), zlpr.SubsetAccuracy()],
    )
    predictor = zlpr.TFKerasMultilabelPredictor(model, LABELS, batch_size=64, preprocessor=encoder)

    train_generator = ExampleGenerator(train_examples, encoder, batch_size=32)
    evaluator = Evaluator(predictor, validation_examples)
    model.fit(
        train_generator.forfit(),
        steps_per_epoch=len(train_generator),
        epochs=args.epochs,
        callbacks=[evaluator],
        verbose=2,
    )

    validation_scores = evaluate(predictor, validation_examples)
    print(f"Validation (best epoch): {json.dumps(validation_scores)}")

    # Serve: save, load back (the tokenizer is not saved: it is passed again), predict.
    predictor.save(output_dir / "predictor")
    served = zlpr.TFKerasMultilabelPredictor.load(output_dir / "predictor", preprocessor=encoder)
    new_texts = ["the coach said the stadium was new", "a concert after the election", "people said some new things"]
    for text, scored in zip(new_texts, served.predict_scored(new_texts)):
        print(f"{text!r}: {[(label, round(logit, 2)) for label, logit in scored]}")

    summary = {"validation": validation_scores, "epochs": evaluator.history, "predictor": str(output_dir / "predictor")}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    where = " (a temporary folder, deleted now; --output-dir keeps it)" if not args.output_dir else ""
    print(f"Predictor saved to {output_dir / 'predictor'}{where}")


if __name__ == "__main__":
    main()
