"""Hall controller for government service halls (政务服务中心 / 便民服务中心)."""
