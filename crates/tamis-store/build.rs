//! Rebuilds this crate when a migration is added or changed:
//! `sqlx::migrate!` embeds the migrations when the crate compiles, and
//! without this a new migration file would not be picked up (the build
//! script that `sqlx migrate build-script` writes).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
