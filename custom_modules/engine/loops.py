"""The training loop: MMEngine's iteration loop, resumed without reloading what it skips."""
import logging

from mmdet.registry import LOOPS
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop


@LOOPS.register_module()
class ResumingIterBasedTrainLoop(IterBasedTrainLoop):
    """MMEngine's ``IterBasedTrainLoop`` whose resume does not reload the trained batches.

    MMEngine resumes at iteration ``k`` by loading and augmenting the ``k``
    batches already trained on and throwing them away, so that the transforms'
    random draws continue where they stopped: 16 minutes for the U-Net's 3,600
    batches on 2 cores. A sampler whose draws carry their own seeds
    (:class:`~custom_modules.data.datasets.StratumBalancedSampler`) has nothing
    to replay: it starts ``k`` batches into the epoch, the same draws with the
    same augmentations. MMEngine builds the sampler with the run's seed before
    a resume restores the checkpoint's (``randomness.seed=None`` draws a new one
    first); the sampler then takes the restored seed, unless the config gave the
    sampler a seed of its own. Other samplers are replayed as MMEngine does.

    Args: those of ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader, max_iters: int, val_begin: int = 1,
                 val_interval: int = 1000, dynamic_intervals=None) -> None:
        super().__init__(runner, dataloader, max_iters, val_begin, val_interval,
                         dynamic_intervals)
        self.seed_at_build = runner.seed  # the seed MMEngine gave the sampler

    def run(self):
        """Launch training (MMEngine's loop, with the data started as above)."""
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        self.start_data(self._iter)
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def start_data(self, batches: int) -> None:
        """Start the data loader ``batches`` batches after the start of training."""
        sampler = self.dataloader.sampler
        if not hasattr(sampler, 'skip') or self.dataloader.batch_size is None:
            if batches:
                print_log(f'Advance dataloader {batches} steps to skip data that has already '
                          'been trained (its sampler cannot skip: every batch is loaded)',
                          logger='current', level=logging.WARNING)
            for _ in range(batches):
                next(self.dataloader_iterator)
            return
        if sampler.seed == self.seed_at_build:  # MMEngine's, not the config's own
            sampler.seed = self.runner.seed  # a resumed run's: its checkpoint's
        epoch, batch = divmod(batches, len(self.dataloader))
        sampler.set_epoch(epoch)
        sampler.skip(batch * self.dataloader.batch_size)
        self.dataloader_iterator._epoch = epoch  # MMEngine's epoch count for the next rollover
        self.dataloader_iterator._iterator = iter(self.dataloader)  # the prefetch restarts
        if batches:
            print_log(f'Resumed the data at epoch {epoch}, batch {batch}: {batches} batches '
                      'skipped without loading them', logger='current')
