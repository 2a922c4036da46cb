"""jepa_pilot.data: the dataset format, the sim collector, rosbag2 import and linear probes."""
from jepa_pilot.data.dataset import (FORMAT, Dataset, DatasetError, DatasetInfo, DatasetWriter, Episode,
                                     split_episodes, square_frames)

__all__ = ["FORMAT", "Dataset", "DatasetError", "DatasetInfo", "DatasetWriter", "Episode", "split_episodes",
           "square_frames"]
