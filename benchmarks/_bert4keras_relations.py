"""The bert4keras 0.11.5 relation-extraction script the benchmarks hold the toolkit against.

Su's `examples/task_relation_extraction.py` (semi-pointer semi-tagging), as that example writes it:
its `Tokenizer`, a `DataGenerator` that samples one subject a sentence and pads with
`sequence_padding`, `build_transformer_model`, the chosen subject's start and end vectors
fed through `LayerNormalization(conditional=True)` in place of the last layer's norm, a `Loss`
layer, and `extract_spoes`, which decodes one sentence at a time. Where the example's heads end in
sigmoids for binary crossentropy, these give logits for the multi-label categorical crossentropy
(bert4keras's own `multilabel_categorical_crossentropy`, over the sequence positions), and a
start or end is taken where its logit is > 0 (the example: probability > 0.6 for a start, 0.5 for
an end).

Import this only in a process that runs tf-keras, after
`toolkit.compat.bert4keras.prepare_environment()`; `training_benchmark.py` (speed) and
`budget_comparison.py` (dev F1 at a fixed time budget) run it in a worker process of its own.
`google_weights` needs only NumPy, `safetensors` and the toolkit's PyTorch-file reader.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace


def google_weights(hf_folder: Path) -> dict:
    """A Hugging Face BERT folder's weights (`model.safetensors`, else `pytorch_model.bin`, read without
    running its pickle: `toolkit.encoders.pytorch_weights`) under Google's checkpoint names.

    bert4keras's `build_transformer_model(config_path, checkpoint_path=weights)` takes such a dict in
    place of a checkpoint prefix (`Transformer.load_variable` reads a dict by name), so the same
    pretrained encoder loads on both sides with no conversion on disk. Linear weights are transposed
    (PyTorch keeps `[out, in]`, TensorFlow `[in, out]`); layer norms' `weight`/`bias` become
    `gamma`/`beta`.
    """
    folder = Path(hf_folder)
    if (folder / "model.safetensors").is_file():
        from safetensors.numpy import load_file

        tensors = load_file(str(folder / "model.safetensors"))
    else:  # m3e-small ships only pytorch_model.bin, its names without `bert.`
        from toolkit.encoders.pytorch_weights import read_pytorch_weights

        tensors = read_pytorch_weights(folder / "pytorch_model.bin")
    weights = {}
    for name, value in tensors.items():
        name = name.removeprefix("bert.")
        if name.endswith("position_ids"):
            continue
        parts = re.sub(r"^encoder\.layer\.(\d+)\.", r"encoder.layer_\1.", name).split(".")
        *scope, leaf = parts
        if "LayerNorm" in scope:
            leaf = {"weight": "gamma", "bias": "beta"}[leaf]
        elif scope[0] == "embeddings":
            scope, leaf = ["embeddings"], scope[-1]  # embeddings.word_embeddings.weight -> word_embeddings
        elif leaf == "weight":
            leaf, value = "kernel", value.T
        weights["bert/" + "/".join([*scope, leaf])] = value
    return weights


def relation_script(tokenizer, predicates, maxlen, config_path, checkpoint=None, note=None):
    """The example's pieces for `predicates`: `placeable`, `data_generator`, the models and `extract`.

    Returns a namespace with:
        placeable(records): the records with at least one triple whose subject and object are found
            among the tokens (the generator skips the others, so an epoch of `len(generator)` steps
            is one pass over what is left);
        data_generator: the `DataGenerator` class, over records `{"text", "spo_list": [(s, p, o)]}`;
        train_model: the model to compile (inputs: token ids, segment ids, subject labels, subject ids,
            object labels; the loss is added by its `Loss` layer);
        subject_model, object_model: the example's two decoding models;
        extract(text): the example's `extract_spoes`, `[(subject, predicate, object)]` strings (the same
            pairs as its loops, found faster).

    `checkpoint` is a checkpoint prefix or a `google_weights` dict (`None`: random weights); `note`, if
    given, is called with every batch's list of token id lists before it is padded (bookkeeping).
    """
    import numpy as np
    from bert4keras.backend import K, batch_gather, keras, multilabel_categorical_crossentropy, sequence_masking
    from bert4keras.layers import LayerNormalization, Loss
    from bert4keras.models import build_transformer_model
    from bert4keras.snippets import DataGenerator, sequence_padding

    predicate2id = {predicate: index for index, predicate in enumerate(predicates)}

    def search(pattern, sequence):
        n = len(pattern)
        for i in range(len(sequence)):
            if sequence[i : i + n] == pattern:
                return i
        return -1

    def spoes_of(token_ids, spo_list):
        """{(subject start, end): [(object start, end, predicate id)]}, as the example builds it."""
        spoes = {}
        for s, p, o in spo_list:
            s = tokenizer.encode(s)[0][1:-1]
            p = predicate2id[p]
            o = tokenizer.encode(o)[0][1:-1]
            s_idx = search(s, token_ids)
            o_idx = search(o, token_ids)
            if s_idx != -1 and o_idx != -1:
                s = (s_idx, s_idx + len(s) - 1)
                o = (o_idx, o_idx + len(o) - 1, p)
                spoes.setdefault(s, []).append(o)
        return spoes

    def placeable(records):
        return [d for d in records if spoes_of(tokenizer.encode(d["text"], maxlen=maxlen)[0], d["spo_list"])]

    class data_generator(DataGenerator):
        def __iter__(self, random=False):
            batch_token_ids, batch_segment_ids = [], []
            batch_subject_labels, batch_subject_ids, batch_object_labels = [], [], []
            for is_end, d in self.sample(random):
                token_ids, segment_ids = tokenizer.encode(d["text"], maxlen=maxlen)
                spoes = spoes_of(token_ids, d["spo_list"])
                if spoes:
                    subject_labels = np.zeros((len(token_ids), 2))
                    for s in spoes:
                        subject_labels[s[0], 0] = 1
                        subject_labels[s[1], 1] = 1
                    start, end = np.array(list(spoes.keys())).T
                    start = np.random.choice(start)
                    end = np.random.choice(end[end >= start])
                    subject_ids = (start, end)
                    object_labels = np.zeros((len(token_ids), len(predicate2id), 2))
                    for o in spoes.get(subject_ids, []):
                        object_labels[o[0], o[2], 0] = 1
                        object_labels[o[1], o[2], 1] = 1
                    batch_token_ids.append(token_ids)
                    batch_segment_ids.append(segment_ids)
                    batch_subject_labels.append(subject_labels)
                    batch_subject_ids.append(subject_ids)
                    batch_object_labels.append(object_labels)
                if batch_token_ids and (len(batch_token_ids) == self.batch_size or is_end):
                    if note is not None:
                        note(batch_token_ids)
                    batch_token_ids = sequence_padding(batch_token_ids)
                    batch_segment_ids = sequence_padding(batch_segment_ids)
                    batch_subject_labels = sequence_padding(batch_subject_labels)
                    batch_subject_ids = np.array(batch_subject_ids)
                    batch_object_labels = sequence_padding(batch_object_labels)
                    # A tuple where the example has a list: tf-keras 2.21 misreads `[...], None`.
                    yield (
                        batch_token_ids, batch_segment_ids,
                        batch_subject_labels, batch_subject_ids, batch_object_labels,
                    ), None  # fmt: skip
                    batch_token_ids, batch_segment_ids = [], []
                    batch_subject_labels, batch_subject_ids, batch_object_labels = [], [], []

    def extract_subject(inputs):
        """The subject's start and end vectors, concatenated."""
        output, subject_ids = inputs
        start = batch_gather(output, subject_ids[:, :1])
        end = batch_gather(output, subject_ids[:, 1:])
        subject = K.concatenate([start, end], 2)
        return subject[:, 0]

    subject_labels = keras.layers.Input(shape=(None, 2), name="Subject-Labels")
    subject_ids = keras.layers.Input(shape=(2,), name="Subject-Ids")
    object_labels = keras.layers.Input(shape=(None, len(predicate2id), 2), name="Object-Labels")
    bert = build_transformer_model(config_path, checkpoint, return_keras_model=False)
    # Subject starts and ends: logits (no sigmoid) for the multi-label loss.
    subject_logits = keras.layers.Dense(units=2, kernel_initializer=bert.initializer)(bert.model.output)
    subject_model = keras.models.Model(bert.model.inputs, subject_logits)
    # The subject enters the object head through a conditional layer norm that takes the
    # place of the last layer's norm (layers[-2] is the output before it).
    output = bert.model.layers[-2].get_output_at(-1)
    subject = keras.layers.Lambda(extract_subject)([output, subject_ids])
    output = LayerNormalization(conditional=True)([output, subject])
    output = keras.layers.Dense(units=len(predicate2id) * 2, kernel_initializer=bert.initializer)(output)
    object_logits = keras.layers.Reshape((-1, len(predicate2id), 2))(output)
    object_model = keras.models.Model(bert.model.inputs + [subject_ids], object_logits)

    class TotalLoss(Loss):
        """Multi-label categorical crossentropy over the positions, per head row; the padding
        positions are masked with -inf. Summed over rows, averaged over the batch."""

        def compute_loss(self, inputs, mask=None):
            subject_labels, object_labels, subject_logits, object_logits = inputs[:4]
            subject_logits = sequence_masking(subject_logits, mask[4], -np.inf, 1)
            object_logits = sequence_masking(object_logits, mask[4], -np.inf, 1)
            subject_loss = multilabel_categorical_crossentropy(
                K.permute_dimensions(subject_labels, (0, 2, 1)), K.permute_dimensions(subject_logits, (0, 2, 1))
            )
            object_loss = multilabel_categorical_crossentropy(
                K.permute_dimensions(object_labels, (0, 2, 3, 1)),
                K.permute_dimensions(object_logits, (0, 2, 3, 1)),
            )
            return K.mean(K.sum(subject_loss, 1)) + K.mean(K.sum(object_loss, [1, 2]))

    subject_out, object_out = TotalLoss([2, 3])(
        [subject_labels, object_labels, subject_logits, object_logits, bert.model.output]
    )
    train_model = keras.models.Model(
        bert.model.inputs + [subject_labels, subject_ids, object_labels], [subject_out, object_out]
    )

    def extract(text):
        """The example's `extract_spoes`: one sentence, its subjects, then the objects of each subject
        (all subjects in one batch); a start pairs with the nearest end at or after it."""
        tokens = tokenizer.tokenize(text, maxlen=maxlen)
        mapping = tokenizer.rematch(text, tokens)
        token_ids, segment_ids = tokenizer.encode(text, maxlen=maxlen)
        token_ids, segment_ids = np.array([token_ids]), np.array([segment_ids])
        subject_preds = subject_model.predict_on_batch([token_ids, segment_ids])
        subject_preds[:, [0, -1]] = -np.inf  # [CLS] and [SEP]
        start = np.where(subject_preds[0, :, 0] > 0)[0]
        end = np.where(subject_preds[0, :, 1] > 0)[0]
        subjects = []
        for i in start:
            j = end[end >= i]
            if len(j) > 0:
                subjects.append((i, j[0]))
        if not subjects:
            return []
        spoes = []
        token_ids = np.repeat(token_ids, len(subjects), 0)
        segment_ids = np.repeat(segment_ids, len(subjects), 0)
        subjects = np.array(subjects)
        object_preds = object_model.predict_on_batch([token_ids, segment_ids, subjects])
        object_preds[:, [0, -1]] = -np.inf
        for subject, object_pred in zip(subjects, object_preds):
            # The example loops over every (start, end) pair and takes, for each start, the first end
            # at or after it with the same predicate: the same pairs, found with one search a predicate
            # (its double loop takes minutes a sentence when an early model marks many positions).
            starts = np.where(object_pred[:, :, 0] > 0)
            ends = np.where(object_pred[:, :, 1] > 0)
            for predicate in np.unique(starts[1]):
                candidates = ends[0][ends[1] == predicate]  # positions, ascending
                for _start in starts[0][starts[1] == predicate]:
                    index = np.searchsorted(candidates, _start)
                    if index < len(candidates):
                        _end = candidates[index]
                        spoes.append(
                            (
                                (mapping[subject[0]][0], mapping[subject[1]][-1]),
                                predicate,
                                (mapping[_start][0], mapping[_end][-1]),
                            )
                        )
        return [(text[s[0] : s[1] + 1], predicates[p], text[o[0] : o[1] + 1]) for s, p, o in spoes]

    return SimpleNamespace(
        placeable=placeable,
        data_generator=data_generator,
        train_model=train_model,
        subject_model=subject_model,
        object_model=object_model,
        extract=extract,
    )


def adamw(learning_rate, lr_schedule, *, weight_decay=0.01, clipnorm=1.0, ema=None):
    """bert4keras's Adam extended as its examples extend it: decoupled weight decay (not on norms and
    biases), `piecewise_linear` learning-rate multipliers (`{step: multiplier}`, from 0 at step 0 to
    the first key), gradients clipped to `clipnorm` tensor by tensor, and with `ema` its
    `extend_with_exponential_moving_average` (AdamEMA: `apply_ema_weights()` puts the bias-corrected
    average in the model, `reset_old_weights()` takes it back out)."""
    from bert4keras.optimizers import (
        Adam,
        extend_with_exponential_moving_average,
        extend_with_piecewise_linear_lr,
        extend_with_weight_decay,
    )

    AdamW = extend_with_weight_decay(Adam, "AdamW")
    AdamWLR = extend_with_piecewise_linear_lr(AdamW, "AdamWLR")
    settings = {}
    if ema:
        AdamWLR = extend_with_exponential_moving_average(AdamWLR, "AdamWLREMA")
        settings["ema_momentum"] = ema
    return AdamWLR(
        learning_rate=learning_rate,
        weight_decay_rate=weight_decay,
        exclude_from_weight_decay=["Norm", "bias"],
        lr_schedule=lr_schedule,
        clipnorm=clipnorm,
        **settings,
    )
