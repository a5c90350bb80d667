"""The fault matrix of docs/fault-matrix.md: each fault provoked for real, nothing lost or counted twice."""
