//! Generated protobuf messages and gRPC stubs for every Jixiao service, and
//! the encoded file descriptor set that reflection serves.

#![allow(clippy::all, missing_docs)]

/// Vendored Google types (`google.type.Decimal`).
pub mod google {
    pub mod r#type {
        tonic::include_proto!("google.r#type");
    }
}

/// Jixiao contracts.
pub mod jixiao {
    pub mod r#type {
        pub mod v1 {
            tonic::include_proto!("jixiao.r#type.v1");
        }
    }
    pub mod plans {
        pub mod v1 {
            tonic::include_proto!("jixiao.plans.v1");
        }
    }
    pub mod indicators {
        pub mod v1 {
            tonic::include_proto!("jixiao.indicators.v1");
        }
    }
    pub mod reviews {
        pub mod v1 {
            tonic::include_proto!("jixiao.reviews.v1");
        }
    }
    pub mod inspections {
        pub mod v1 {
            tonic::include_proto!("jixiao.inspections.v1");
        }
    }
    pub mod aggregator {
        pub mod v1 {
            tonic::include_proto!("jixiao.aggregator.v1");
        }
    }
}

pub use google::r#type::Decimal;
pub use jixiao::aggregator::v1 as aggregator;
pub use jixiao::indicators::v1 as indicators;
pub use jixiao::inspections::v1 as inspections;
pub use jixiao::plans::v1 as plans;
pub use jixiao::reviews::v1 as reviews;
pub use jixiao::r#type::v1 as types;

pub mod codec;

/// The encoded `FileDescriptorSet` of every contract, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/jixiao_descriptor.bin"));
