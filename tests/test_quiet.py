import logging
import warnings

from tl_lightning.quiet import quiet_library_noise


def test_known_library_noise_is_dropped_and_everything_else_kept(caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_library_noise()
        quiet_library_noise()  # a second call adds nothing twice
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("something the user must see", FutureWarning)
    assert [str(w.message) for w in caught] == ["something the user must see"]

    bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert len(bnb.filters) == 1
    with caplog.at_level(logging.WARNING):
        bnb.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "No module named 'kernels'")
        bnb.warning("a real bitsandbytes problem")
    assert [r.getMessage() for r in caplog.records] == ["a real bitsandbytes problem"]
