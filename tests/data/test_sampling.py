"""sampling.py: epoch orders seeded by (seed, epoch), length buckets, and a loader that resumes at
the batch it stopped at."""

from __future__ import annotations

import random

from tl_lightning.data.sampling import BucketBatchSampler, EpochSampler, ResumableDataLoader, epoch_seed


def test_bucket_sampler_epochs_are_permutations_seeded_by_epoch():
    rng = random.Random(3)
    lengths = [rng.randint(1, 500) for _ in range(103)]
    sampler = EpochSampler(103, shuffle=True, seed=5)
    bs = BucketBatchSampler(sampler, 8, lengths=lengths, bucket_batches=4, seed=5)
    epoch0 = list(bs)
    assert len(epoch0) == len(bs) == 13
    assert sorted(i for b in epoch0 for i in b) == list(range(103))
    assert list(bs) == epoch0
    sampler.set_epoch(1)
    epoch1 = list(bs)
    assert epoch1 != epoch0 and sorted(i for b in epoch1 for i in b) == list(range(103))
    # batches hold similar lengths: far less spread than random batches
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch0)
    random_spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b)
                        for b in BucketBatchSampler(sampler, 8, lengths=lengths, bucket_batches=1))
    assert spread < random_spread / 2


def test_epoch_seeds_do_not_collide_across_seed_and_epoch():
    assert epoch_seed(1, 0) != epoch_seed(0, 1)
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_the_loader_skips_the_batches_handed_out_before_the_state_was_saved():
    def loader() -> ResumableDataLoader:
        sampler = BucketBatchSampler(EpochSampler(10, shuffle=True, seed=1), 3, lengths=list(range(10)), seed=1)
        return ResumableDataLoader(list(range(10)), batch_sampler=sampler, collate_fn=list)

    full = list(loader())
    first = loader()
    it = iter(first)
    next(it), next(it)
    assert first.state_dict() == {"epoch": 0, "batches_yielded": 2}
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    assert list(resumed) == full[2:] and list(resumed) == full  # only the resumed epoch is cut
