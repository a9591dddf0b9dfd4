//! Runnable examples of transformed-efd; each is an `[[example]]` target beside this file.
//!
//! - `plan_config`: load and validate a column config and print its query plan.
//! - `synth_night`: generate a synthetic night (EFD line protocol, SQLite Butler registry, manifest)
//!   with [`synth`], the generator library that `make demo`, end-to-end tests and benchmarks share.
//! - `data/demo-config.yaml`: a small config touching every feature, used by `make demo`.

pub mod synth;

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn demo_config_is_valid_and_covers_every_function() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-config.yaml");
        let config = transform_core::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for name in transform_core::Function::NAMES {
            assert!(
                config.columns.iter().any(|c| c.function.name() == name),
                "the demo config lacks a `{name}` column"
            );
        }
        assert!(config.columns.iter().any(|c| c.packed_series));
        assert!(config.columns.iter().any(|c| c.store_unpivoted));
        assert!(
            config
                .columns
                .iter()
                .any(|c| c.pre_aggregate_interval.is_some())
        );
        assert!(
            config
                .columns
                .iter()
                .any(|c| c.start_offset_hours.is_some())
        );
    }
}
