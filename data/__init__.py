"""jepa_pilot.data: the dataset format, the sim collector and rosbag2 import."""
from jepa_pilot.data.dataset import FORMAT, Dataset, DatasetError, DatasetInfo, DatasetWriter, Episode

__all__ = ["FORMAT", "Dataset", "DatasetError", "DatasetInfo", "DatasetWriter", "Episode"]
