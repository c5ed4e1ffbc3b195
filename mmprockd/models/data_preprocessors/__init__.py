from .seg_data_preprocessor_with_augments import \
    SegDataPreProcessorWithAugments

__all__ = ['SegDataPreProcessorWithAugments']
