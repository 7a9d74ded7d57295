"""Pure placement decisions shared by the modes: address pools with sticky assignment."""
