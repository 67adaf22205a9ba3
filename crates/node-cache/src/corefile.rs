//! (being written: configuration side)
