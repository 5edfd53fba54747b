import numpy as np

from mit_dataset.timeseries import centred_moving_average


def test_centred_moving_average_keeps_length_and_edges():
    values = np.array([[0.0, 0.0, 3.0, 0.0, 0.0, 6.0]])
    smoothed = centred_moving_average(values, 3)
    np.testing.assert_allclose(smoothed, [[0.0, 1.0, 1.0, 1.0, 2.0, 4.0]])
    # A constant signal stays constant at the ends (edge padding, not zero padding).
    np.testing.assert_allclose(centred_moving_average(np.full((2, 7), 2.5), 5), np.full((2, 7), 2.5))
    np.testing.assert_array_equal(centred_moving_average(values, 1), values)
