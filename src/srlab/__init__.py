"""srlab: a super-resolution experiment platform."""
