//! Profiling and tuning: peak and bandwidth probes, kernel timers, the tuner (to be written).
