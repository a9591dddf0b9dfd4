//! The synthetic Butler registry: SQLite DDL of the daf_butler (dimension universe v8) tables the
//! service reads, with the columns and constraints of the real registry, and the writer that fills
//! them for one night.
//!
//! Timespans are TAI nanoseconds since 1970, half-open `[begin, end)`, in `timespan_begin` and
//! `timespan_end` (the SQLite layout). The DDL is compared with the reference dump
//! (`../shared/reference/butler-registry/registry_sqlite.sql`) by `examples/tests/synth.rs`.

use std::path::Path;

use anyhow::Context as _;
use diesel::connection::Connection as _;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::{RunQueryDsl as _, SqliteConnection};
use transform_core::{Instrument, UtcNanos};

use super::{Manifest, NANOS_PER_HOUR};

/// `CREATE TABLE` statements of the tables written, in dependency order (the real registry's
/// columns, types and constraints).
pub const DDL: [&str; 7] = [
    r#"CREATE TABLE instrument (
	name VARCHAR(32) NOT NULL,
	visit_max BIGINT,
	visit_system BIGINT,
	exposure_max BIGINT,
	detector_max BIGINT,
	class_name TEXT,
	PRIMARY KEY (name),
	CONSTRAINT instrument_len_name CHECK (length("name")<=32 AND length("name")>=1)
)"#,
    r#"CREATE TABLE day_obs (
	instrument VARCHAR(32) NOT NULL,
	id BIGINT NOT NULL,
	timespan_begin BIGINT,
	timespan_end BIGINT,
	PRIMARY KEY (instrument, id),
	CONSTRAINT day_obs_len_instrument CHECK (length("instrument")<=32 AND length("instrument")>=1),
	CONSTRAINT fkey_day_obs_instrument_name_instrument FOREIGN KEY(instrument) REFERENCES instrument (name)
)"#,
    r#"CREATE TABLE "group" (
	instrument VARCHAR(32) NOT NULL,
	name TEXT NOT NULL,
	PRIMARY KEY (instrument, name),
	CONSTRAINT group_len_instrument CHECK (length("instrument")<=32 AND length("instrument")>=1),
	CONSTRAINT fkey_group_instrument_name_instrument FOREIGN KEY(instrument) REFERENCES instrument (name)
)"#,
    r#"CREATE TABLE physical_filter (
	instrument VARCHAR(32) NOT NULL,
	name VARCHAR(32) NOT NULL,
	band VARCHAR(32) NOT NULL,
	PRIMARY KEY (instrument, name),
	CONSTRAINT physical_filter_len_instrument CHECK (length("instrument")<=32 AND length("instrument")>=1),
	CONSTRAINT physical_filter_len_name CHECK (length("name")<=32 AND length("name")>=1),
	CONSTRAINT physical_filter_len_band CHECK (length("band")<=32 AND length("band")>=1),
	CONSTRAINT fkey_physical_filter_instrument_name_instrument FOREIGN KEY(instrument) REFERENCES instrument (name)
)"#,
    r#"CREATE TABLE exposure (
	instrument VARCHAR(32) NOT NULL,
	id BIGINT NOT NULL,
	day_obs BIGINT NOT NULL,
	"group" TEXT NOT NULL,
	physical_filter VARCHAR(32) NOT NULL,
	obs_id TEXT,
	exposure_time FLOAT,
	dark_time FLOAT,
	observation_type VARCHAR(16),
	observation_reason TEXT,
	seq_num BIGINT,
	seq_start BIGINT,
	seq_end BIGINT,
	target_name TEXT,
	science_program TEXT,
	tracking_ra FLOAT,
	tracking_dec FLOAT,
	sky_angle FLOAT,
	azimuth FLOAT,
	zenith_angle FLOAT,
	has_simulated BOOLEAN,
	can_see_sky BOOLEAN,
	timespan_begin BIGINT,
	timespan_end BIGINT,
	PRIMARY KEY (instrument, id),
	CONSTRAINT exposure_len_instrument CHECK (length("instrument")<=32 AND length("instrument")>=1),
	CONSTRAINT exposure_len_physical_filter CHECK (length("physical_filter")<=32 AND length("physical_filter")>=1),
	CONSTRAINT exposure_len_observation_type CHECK (length("observation_type")<=16 AND length("observation_type")>=1),
	CONSTRAINT exposure_unq_instrument_obs_id UNIQUE (instrument, obs_id),
	CONSTRAINT fkey_exposure_instrument_name_instrument FOREIGN KEY(instrument) REFERENCES instrument (name),
	CONSTRAINT fkey_exposure_day_obs_instrument_id_instrument_day_obs FOREIGN KEY(instrument, day_obs) REFERENCES day_obs (instrument, id),
	CONSTRAINT fkey_exposure_group_instrument_name_instrument_group FOREIGN KEY(instrument, "group") REFERENCES "group" (instrument, name),
	CONSTRAINT fkey_exposure_physical_filter_instrument_name_instrument_physical_filter FOREIGN KEY(instrument, physical_filter) REFERENCES physical_filter (instrument, name)
)"#,
    r#"CREATE TABLE visit (
	instrument VARCHAR(32) NOT NULL,
	id BIGINT NOT NULL,
	day_obs BIGINT NOT NULL,
	physical_filter VARCHAR(32) NOT NULL,
	name TEXT,
	seq_num BIGINT,
	exposure_time FLOAT,
	target_name TEXT,
	observation_reason TEXT,
	science_program TEXT,
	azimuth FLOAT,
	zenith_angle FLOAT,
	region TEXT,
	timespan_begin BIGINT,
	timespan_end BIGINT,
	PRIMARY KEY (instrument, id),
	CONSTRAINT visit_len_instrument CHECK (length("instrument")<=32 AND length("instrument")>=1),
	CONSTRAINT visit_len_physical_filter CHECK (length("physical_filter")<=32 AND length("physical_filter")>=1),
	CONSTRAINT visit_unq_instrument_name UNIQUE (instrument, name),
	CONSTRAINT fkey_visit_instrument_name_instrument FOREIGN KEY(instrument) REFERENCES instrument (name),
	CONSTRAINT fkey_visit_day_obs_instrument_id_instrument_day_obs FOREIGN KEY(instrument, day_obs) REFERENCES day_obs (instrument, id),
	CONSTRAINT fkey_visit_physical_filter_instrument_name_instrument_physical_filter FOREIGN KEY(instrument, physical_filter) REFERENCES physical_filter (instrument, name)
)"#,
    r#"CREATE TABLE visit_definition (
	instrument VARCHAR(32) NOT NULL,
	exposure BIGINT NOT NULL,
	visit BIGINT NOT NULL,
	PRIMARY KEY (instrument, exposure, visit),
	CONSTRAINT visit_definition_len_instrument CHECK (length("instrument")<=32 AND length("instrument")>=1),
	CONSTRAINT fkey_visit_definition_instrument_name_instrument FOREIGN KEY(instrument) REFERENCES instrument (name),
	CONSTRAINT fkey_visit_definition_exposure_instrument_id_instrument_exposure FOREIGN KEY(instrument, exposure) REFERENCES exposure (instrument, id),
	CONSTRAINT fkey_visit_definition_visit_instrument_id_instrument_visit FOREIGN KEY(instrument, visit) REFERENCES visit (instrument, id)
)"#,
];

/// The filters used, `(physical_filter, band)`, per instrument.
pub(crate) fn filters(instrument: Instrument) -> [(&'static str, &'static str); 2] {
    match instrument {
        Instrument::Latiss => [("SDSSr_65mm~empty", "r"), ("SDSSg_65mm~empty", "g")],
        _ => [("r_57", "r"), ("i_39", "i")],
    }
}

fn instrument_class(instrument: Instrument) -> &'static str {
    match instrument {
        Instrument::Latiss => "lsst.obs.lsst.Latiss",
        Instrument::LsstCam => "lsst.obs.lsst.LsstCam",
        Instrument::LsstComCam => "lsst.obs.lsst.LsstComCam",
        Instrument::LsstComCamSim => "lsst.obs.lsst.LsstComCamSim",
    }
}

/// Creates `path` (replacing any file there) and writes the night of `manifest` into it.
pub(crate) fn write(
    path: &Path,
    instrument: Instrument,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    if path.exists() {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    let url = path
        .to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    let mut conn = SqliteConnection::establish(url)
        .with_context(|| format!("cannot create {}", path.display()))?;
    conn.transaction::<_, anyhow::Error, _>(|conn| fill(conn, instrument, manifest))
        .with_context(|| format!("cannot write the registry {}", path.display()))
}

fn fill(
    conn: &mut SqliteConnection,
    instrument: Instrument,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    let name = instrument.butler_name();
    for ddl in DDL {
        diesel::sql_query(ddl).execute(conn)?;
    }
    diesel::sql_query(
        "INSERT INTO instrument (name, visit_max, visit_system, exposure_max, detector_max, \
         class_name) VALUES (?, 6050123199999, 2, 6050123199999, 1000, ?)",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(instrument_class(instrument))
    .execute(conn)?;
    for (filter, band) in filters(instrument) {
        diesel::sql_query("INSERT INTO physical_filter (instrument, name, band) VALUES (?, ?, ?)")
            .bind::<Text, _>(name)
            .bind::<Text, _>(filter)
            .bind::<Text, _>(band)
            .execute(conn)?;
    }
    let mut days: Vec<i64> = manifest.items.iter().map(|i| i.day_obs).collect();
    days.sort_unstable();
    days.dedup();
    for day in days {
        // day_obs D runs from D 12:00 UTC for 24 hours.
        let begin = UtcNanos(super::day_obs_start_utc(day) + 12 * NANOS_PER_HOUR);
        let end = begin.offset(24 * NANOS_PER_HOUR);
        diesel::sql_query(
            "INSERT INTO day_obs (instrument, id, timespan_begin, timespan_end) VALUES (?, ?, ?, ?)",
        )
        .bind::<Text, _>(name)
        .bind::<BigInt, _>(day)
        .bind::<BigInt, _>(begin.to_tai().0)
        .bind::<BigInt, _>(end.to_tai().0)
        .execute(conn)?;
    }
    for item in manifest.items.iter().filter(|i| !i.is_visit) {
        let group = format!("{}_{:05}", item.day_obs, item.seq_num);
        diesel::sql_query("INSERT INTO \"group\" (instrument, name) VALUES (?, ?)")
            .bind::<Text, _>(name)
            .bind::<Text, _>(&group)
            .execute(conn)?;
        diesel::sql_query(
            "INSERT INTO exposure (instrument, id, day_obs, \"group\", physical_filter, obs_id, \
             exposure_time, dark_time, observation_type, observation_reason, seq_num, seq_start, \
             seq_end, target_name, science_program, tracking_ra, tracking_dec, sky_angle, azimuth, \
             zenith_angle, has_simulated, can_see_sky, timespan_begin, timespan_end) VALUES \
             (?, ?, ?, ?, ?, ?, ?, ?, ?, 'synthetic', ?, ?, ?, 'synthetic field', 'SYNTH', \
             10.0, -30.0, 0.0, 180.0, 30.0, 1, ?, ?, ?)",
        )
        .bind::<Text, _>(name)
        .bind::<BigInt, _>(item.id)
        .bind::<BigInt, _>(item.day_obs)
        .bind::<Text, _>(&group)
        .bind::<Text, _>(&item.physical_filter)
        .bind::<Text, _>(format!("SY_O_{}_{:06}", item.day_obs, item.seq_num))
        .bind::<Double, _>(item.exposure_time)
        .bind::<Double, _>(item.exposure_time)
        .bind::<Nullable<Text>, _>(item.observation_type.as_deref())
        .bind::<BigInt, _>(item.seq_num)
        .bind::<BigInt, _>(item.seq_num)
        .bind::<BigInt, _>(item.seq_num)
        .bind::<diesel::sql_types::Bool, _>(item.observation_type.as_deref() == Some("science"))
        .bind::<BigInt, _>(UtcNanos(item.begin_utc_ns).to_tai().0)
        .bind::<BigInt, _>(UtcNanos(item.end_utc_ns).to_tai().0)
        .execute(conn)?;
    }
    for item in manifest.items.iter().filter(|i| i.is_visit) {
        diesel::sql_query(
            "INSERT INTO visit (instrument, id, day_obs, physical_filter, name, seq_num, \
             exposure_time, target_name, observation_reason, science_program, azimuth, \
             zenith_angle, region, timespan_begin, timespan_end) VALUES \
             (?, ?, ?, ?, ?, ?, ?, 'synthetic field', 'synthetic', 'SYNTH', 180.0, 30.0, NULL, ?, ?)",
        )
        .bind::<Text, _>(name)
        .bind::<BigInt, _>(item.id)
        .bind::<BigInt, _>(item.day_obs)
        .bind::<Text, _>(&item.physical_filter)
        .bind::<Text, _>(format!("SY_O_{}_{:06}", item.day_obs, item.seq_num))
        .bind::<BigInt, _>(item.seq_num)
        .bind::<Double, _>(item.exposure_time)
        .bind::<BigInt, _>(UtcNanos(item.begin_utc_ns).to_tai().0)
        .bind::<BigInt, _>(UtcNanos(item.end_utc_ns).to_tai().0)
        .execute(conn)?;
        diesel::sql_query(
            "INSERT INTO visit_definition (instrument, exposure, visit) VALUES (?, ?, ?)",
        )
        .bind::<Text, _>(name)
        .bind::<BigInt, _>(item.id)
        .bind::<BigInt, _>(item.id)
        .execute(conn)?;
    }
    Ok(())
}
