"""Binary wire speed: our protobuf codec beside the official `tinker` SDK, in one process.

Two payloads (issue 2), and a third for context:
  * a forward_backward request of 64 datums x 2,048 tokens (int32 tokens on the wire, int64
    target_tokens, float32 weights: ~2.1 MB);
  * a sample response of 16 sequences x 512 tokens with logprobs;
  * the forward_backward result of such a request (logprobs and elementwise loss per datum).

For each: encode and decode time per call (median of several batches of calls, see
`paired_medians`) and peak traced memory (tracemalloc, a separate run), starting from user
data given as Python lists and, for us, as numpy arrays; the official SDK's figure and the
ratio official/ours on the same line. Our msgspec JSON of the same values is printed for
reference.

Where the official side's work hides from tracemalloc: upb keeps every bytes field of a
message it builds in its own arena, so for the official *encoders* the traced peak is the
serialised body alone, while its real peak also holds a full copy of the data. Our encoders
build the body from the arrays they are given; our traced peak is real.

What "decode" means for the official SDK: for results (sample) it is the SDK's own
`response_conv` reader. The SDK never decodes requests (servers do), so for the request we
print both its raw `ParseFromString` and parse + building the SDK's Datums from it, the
equivalent of what our decoder returns. tracemalloc sees Python and numpy allocations but
not upb's arena (the official parsed message), so official decode peaks are lower bounds.

Run: python benchmarks/wire_bench.py [--repeat N]   (needs the test extras: tinker, protobuf)
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import tinkex_actors.types as tx
from tinkex_actors.types import proto

try:
    import tinker.types as official
    from tinker.proto import request_conv, response_conv
    from tinker.proto import tinker_public_pb2 as pb
except ImportError as exc:  # pragma: no cover - a message, not a crash
    raise SystemExit(
        f"wire_bench needs the official SDK (pip install -e '.[test]'): {exc}"
    ) from None

N_DATUMS, N_TOKENS = 64, 2048
N_SEQS, N_SAMPLED = 16, 512


def paired_medians(
    official_fn: Callable[[], Any], ours_fn: Callable[[], Any], repeat: int
) -> tuple[float, float]:
    """Median wall times in ms per call of two functions, run alternately after a warm-up.

    Alternating keeps a load change on a shared machine from favouring either side. Each
    timed sample is a batch of calls, both sides the same number, so that the slower side's
    batch lasts at least MIN_SAMPLE_S (one call for the multi-millisecond rows, hundreds for
    the sample result; one for a reference figure paired with a no-op). Why batches: a lone
    sub-millisecond call right after gc.collect() mostly measures refilling the CPU caches
    the collector's walk over every live object flushed (about 0.15 ms on this machine, on
    either side), a cost neither codec pays in a running client.
    """
    official_fn()
    ours_fn()
    slowest = max(_one_call_s(official_fn), _one_call_s(ours_fn))
    number = max(1, math.ceil(MIN_SAMPLE_S / max(slowest, 1e-9)))
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((official_fn, times[0]), (ours_fn, times[1])):
            gc.collect()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            bucket.append((time.perf_counter() - start) / number)
    return statistics.median(times[0]) * 1e3, statistics.median(times[1]) * 1e3


MIN_SAMPLE_S = 0.005


def _one_call_s(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_mib(fn: Callable[[], Any]) -> float:
    """Peak memory traced while `fn` runs, in MiB (its result is kept until the end)."""
    gc.collect()
    tracemalloc.start()
    result = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return peak / 2**20


# ---- payloads ---------------------------------------------------------------------------------


def request_payload(rng: np.random.Generator) -> dict[str, Any]:
    tokens = rng.integers(0, 150_000, (N_DATUMS, N_TOKENS + 1), dtype=np.int64)
    weights = rng.random((N_DATUMS, N_TOKENS), dtype=np.float32)
    return {
        "tokens_np": [t[:-1].copy() for t in tokens],
        "targets_np": [t[1:].copy() for t in tokens],
        "weights_np": list(weights),
        "tokens": [t[:-1].tolist() for t in tokens],
        "targets": [t[1:].tolist() for t in tokens],
        "weights": [w.tolist() for w in weights],
    }


def ours_build(p: dict[str, Any], numpy_inputs: bool) -> tx.ForwardBackwardInput:
    """Our Datums from the user's values (lists or numpy arrays)."""
    suffix = "_np" if numpy_inputs else ""
    data = [
        tx.Datum(
            model_input=tx.ModelInput.from_ints(p["tokens" + suffix][i]),
            loss_fn_inputs={
                "target_tokens": p["targets" + suffix][i],
                "weights": p["weights" + suffix][i],
            },
        )
        for i in range(N_DATUMS)
    ]
    return tx.ForwardBackwardInput(data=data, loss_fn="cross_entropy")


def ours_encode(fb_input: tx.ForwardBackwardInput) -> bytes:
    return proto.encode_forward_backward_request(fb_input, model_id="m", seq_id=1)


def ours_request_json(fb_input: tx.ForwardBackwardInput) -> bytes:
    return tx.to_json({"forward_backward_input": fb_input, "model_id": "m", "seq_id": 1})


def official_build(p: dict[str, Any], numpy_inputs: bool) -> Any:
    """The SDK's request from the same values (its text chunks take lists only)."""
    suffix = "_np" if numpy_inputs else ""
    data = [
        official.Datum(
            model_input=official.ModelInput.from_ints(
                p["tokens_np"][i].tolist() if numpy_inputs else p["tokens"][i]
            ),
            loss_fn_inputs={
                "target_tokens": p["targets" + suffix][i],
                "weights": p["weights" + suffix][i],
            },
        )
        for i in range(N_DATUMS)
    ]
    return official.ForwardBackwardRequest(
        forward_backward_input=official.ForwardBackwardInput(data=data, loss_fn="cross_entropy"),
        model_id="m",
        seq_id=1,
    )


def official_encode(request: Any) -> bytes:
    body: bytes = request_conv.forward_backward_request_to_proto(request).SerializeToString()
    return body


def official_parse_request(body: bytes) -> Any:
    message = pb.ForwardBackwardRequest()
    message.ParseFromString(body)
    return message


def official_decode_request(body: bytes) -> list[Any]:
    """Parse, then build the SDK's own Datums, the way its response reader builds results."""
    message = official_parse_request(body)
    data = []
    for datum in message.data:
        tokens = np.frombuffer(datum.model_input[0].encoded_text.tokens, dtype=np.int32)
        inputs = {
            name: official.TensorData(
                data=np.frombuffer(t.dense, dtype=np.int64 if t.dtype == 2 else np.float32),
                dtype="int64" if t.dtype == 2 else "float32",
                shape=list(t.shape),
            )
            for name, t in datum.loss_fn_inputs.items()
        }
        data.append(
            official.Datum(
                model_input=official.ModelInput.from_ints(tokens.tolist()), loss_fn_inputs=inputs
            )
        )
    return data


def sample_payload(rng: np.random.Generator) -> dict[str, Any]:
    tokens = rng.integers(0, 150_000, (N_SEQS, N_SAMPLED), dtype=np.int32)
    logprobs = -rng.random((N_SEQS, N_SAMPLED), dtype=np.float32) * 5
    return {
        "tokens_np": list(tokens),
        "logprobs_np": list(logprobs),
        "tokens": [t.tolist() for t in tokens],
        "logprobs": [lp.tolist() for lp in logprobs],
    }


def ours_sample_response(p: dict[str, Any], numpy_inputs: bool) -> tx.SampleResponse:
    """Our result from the values (the payload lookups are hoisted, as on the official side)."""
    suffix = "_np" if numpy_inputs else ""
    tokens, logprobs = p["tokens" + suffix], p["logprobs" + suffix]
    return tx.SampleResponse(
        sequences=[
            tx.SampledSequence(stop_reason="length", tokens_np=t, logprobs_np=lp)
            for t, lp in zip(tokens, logprobs, strict=True)
        ]
    )


def official_encode_sample(p: dict[str, Any], numpy_inputs: bool) -> bytes:
    """What a server holding the values builds with the official classes."""
    suffix = "_np" if numpy_inputs else ""
    message = pb.SampleResponse()
    for tokens, logprobs in zip(p["tokens" + suffix], p["logprobs" + suffix], strict=True):
        if not numpy_inputs:
            tokens, logprobs = np.asarray(tokens, np.int32), np.asarray(logprobs, np.float32)
        seq = message.sequences.add(stop_reason=pb.STOP_REASON_LENGTH)
        seq.tokens = tokens.astype("<i4", copy=False).tobytes()
        seq.logprobs = logprobs.astype("<f4", copy=False).tobytes()
    body: bytes = message.SerializeToString()
    return body


def fb_output_payload(rng: np.random.Generator) -> tx.ForwardBackwardOutput:
    """A cross_entropy result: per-datum logprobs and elementwise loss, float32."""
    outputs = [
        {
            "logprobs": tx.TensorData.from_numpy(-rng.random(N_TOKENS, dtype=np.float32)),
            "elementwise_loss": tx.TensorData.from_numpy(rng.random(N_TOKENS, dtype=np.float32)),
        }
        for _ in range(N_DATUMS)
    ]
    return tx.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord", loss_fn_outputs=outputs, metrics={"loss:sum": 1.0}
    )


# ---- report -----------------------------------------------------------------------------------


def row(
    label: str, official_ms: float, ours_ms: float, official_mib: float, ours_mib: float
) -> str:
    ratio = official_ms / ours_ms if ours_ms else float("inf")
    return (
        f"  {label:<44} {official_ms:9.3f} {ours_ms:9.3f} {ratio:7.1f}x"
        f" {official_mib:9.2f} {ours_mib:9.2f}"
    )


def header(title: str) -> None:
    print(f"\n{title}")
    print(f"  {'':<44} {'official':>9} {'ours':>9} {'speedup':>8} {'off. MiB':>9} {'ours MiB':>9}")


Case = tuple[str, Callable[[], Any], Callable[[], Any]]


def report(cases: list[Case], repeat: int) -> None:
    """Print one line per case: both times (run alternately), the speedup, both peaks."""
    for label, official_fn, ours_fn in cases:
        official_ms, ours_ms = paired_medians(official_fn, ours_fn, repeat)
        print(row(label, official_ms, ours_ms, peak_mib(official_fn), peak_mib(ours_fn)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure")
    args = parser.parse_args()
    repeat = args.repeat
    rng = np.random.default_rng(0)
    # glibc serves big blocks with mmap until a freed big block raises its threshold; from
    # then on they come from the heap without page faults. Which happened first would swing
    # the figures of whichever side runs first by 2-5x, so put the process in the state a
    # long-running client reaches anyway before measuring anything.
    big_block = np.empty(16 << 20, dtype=np.uint8)
    del big_block  # freeing it is the point

    p = request_payload(rng)
    built_lists, built_numpy = ours_build(p, False), ours_build(p, True)
    official_lists, official_numpy = official_build(p, False), official_build(p, True)
    body = ours_encode(built_numpy)
    assert official_parse_request(body) == official_parse_request(official_encode(official_lists))
    header(f"forward_backward request, {N_DATUMS} datums x {N_TOKENS} tokens ({len(body):,} bytes)")
    cases: list[Case] = [
        (
            "build Datums from Python lists",
            lambda: official_build(p, False),
            lambda: ours_build(p, False),
        ),
        (
            "encode Datums built from lists",
            lambda: official_encode(official_lists),
            lambda: ours_encode(built_lists),
        ),
        (
            "encode Datums built from numpy arrays",
            lambda: official_encode(official_numpy),
            lambda: ours_encode(built_numpy),
        ),
        (
            "build + encode, from Python lists",
            lambda: official_encode(official_build(p, False)),
            lambda: ours_encode(ours_build(p, False)),
        ),
        (
            "build + encode, from numpy arrays",
            lambda: official_encode(official_build(p, True)),
            lambda: ours_encode(ours_build(p, True)),
        ),
        (
            "decode to Datums (official: parse + build)",
            lambda: official_decode_request(body),
            lambda: proto.decode_forward_backward_request(body),
        ),
        (
            "decode, official raw ParseFromString only",
            lambda: official_parse_request(body),
            lambda: proto.decode_forward_backward_request(body),
        ),
    ]
    report(cases, repeat)
    json_body = ours_request_json(built_numpy)
    json_ms = paired_medians(lambda: None, lambda: ours_request_json(built_numpy), repeat)[1]
    print(
        f"  reference: our msgspec JSON of the built request, {len(json_body):,} bytes: "
        f"encode {json_ms:.3f} ms"
    )

    s = sample_payload(rng)
    sample_body = proto.encode_sample_response(ours_sample_response(s, True))
    assert sample_body == official_encode_sample(s, True)
    header(
        f"sample response, {N_SEQS} sequences x {N_SAMPLED} tokens with logprobs "
        f"({len(sample_body):,} bytes)"
    )
    sample_cases: list[Case] = [
        (
            "encode, from Python lists (build + encode)",
            lambda: official_encode_sample(s, False),
            lambda: proto.encode_sample_response(ours_sample_response(s, False)),
        ),
        (
            "encode, from numpy arrays (build + encode)",
            lambda: official_encode_sample(s, True),
            lambda: proto.encode_sample_response(ours_sample_response(s, True)),
        ),
        (
            "decode (official: response_conv)",
            lambda: response_conv.deserialize_sample_response(sample_body),
            lambda: proto.decode_sample_response(sample_body),
        ),
    ]
    report(sample_cases, repeat)
    response = ours_sample_response(s, True)
    json_sample = tx.to_json(response)
    encode_ms, decode_ms = paired_medians(
        lambda: tx.to_json(response),
        lambda: tx.from_json(json_sample, tx.SampleResponse),
        repeat,
    )
    print(
        f"  reference: our msgspec JSON, {len(json_sample):,} bytes: "
        f"encode {encode_ms:.3f} ms, decode {decode_ms:.3f} ms"
    )
    outputs = fb_output_payload(rng)
    output_body = proto.encode_forward_backward_output(outputs)
    header(
        f"forward_backward result, {N_DATUMS} datums x {N_TOKENS} logprobs + elementwise_loss "
        f"({len(output_body):,} bytes)"
    )
    report(
        [
            (
                "decode (official: response_conv)",
                lambda: response_conv.deserialize_forward_backward_output(output_body),
                lambda: proto.decode_forward_backward_output(output_body),
            )
        ],
        repeat,
    )
    encode_ms = paired_medians(
        lambda: None, lambda: proto.encode_forward_backward_output(outputs), repeat
    )[1]
    print(f"  ours only (the SDK has no result encoder): encode {encode_ms:.3f} ms")
    print(
        "\nMiB = peak traced by tracemalloc; it cannot see upb's arena, so official figures are"
        "\nlower bounds (the official encoder also holds a parsed-message copy of the body)."
    )


if __name__ == "__main__":
    main()
