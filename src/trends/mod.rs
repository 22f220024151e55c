//! Trend detection (filled in below).
