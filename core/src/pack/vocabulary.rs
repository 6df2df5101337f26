//! The words `pack.json` uses: layers, clouds, add-on types, dependency and resource kinds.
//!
//! Two sources define them and they do not agree: the pack JSON schema of the vendor
//! documentation (`shared/seeds/001_…`) and the schema the publisher's own pack checks run
//! on published packs. Strata accepts both: each enum lists the documented spelling first
//! and the published alternatives after it (`master` beside `control-plane`, `app-services`
//! beside `app services`). Where the publisher's schema leaves a field free (`addonType`) or
//! lists more values than the docs (`cloudTypes`), a value Strata does not know is a warning
//! made by the parser, not an error; see [`crate::pack::manifest`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Generates an enum of the schema's string values with its wire spelling and any
/// alternative spellings, so the list in messages and the parser cannot drift apart.
macro_rules! schema_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $(#[serde(rename = $wire $(, alias = $alias)*)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The documented spelling.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// The documented spelling or a published alternative.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire $(| $alias)* => Some($name::$variant),)+ _ => None }
            }

            /// Every accepted spelling, for messages.
            pub fn expected() -> String {
                [$($wire $(, $alias)*),+].iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

schema_enum! {
    /// The layer of a cluster profile a pack fills.
    Layer {
        Kernel => "kernel",
        Os => "os",
        K8s => "k8s",
        Cni => "cni",
        Csi => "csi",
        Addon => "addon",
    }
}

schema_enum! {
    /// The clouds a pack supports (`cloudTypes` / `cloudType`): the documented list, then
    /// the ones only the publisher's schema lists (`tencent`, `tke`, `libvirt`, `custom`).
    PackCloud {
        All => "all",
        Aws => "aws",
        Azure => "azure",
        Gcp => "gcp",
        Vsphere => "vsphere",
        Openstack => "openstack",
        Baremetal => "baremetal",
        Maas => "maas",
        Aks => "aks",
        Eks => "eks",
        Edge => "edge",
        EdgeNative => "edge-native",
        Coxedge => "coxedge",
        Tencent => "tencent",
        Tke => "tke",
        Libvirt => "libvirt",
        Custom => "custom",
    }
}

schema_enum! {
    /// What kind of add-on an `addon` pack is: the documented list (three values contain
    /// spaces), with the hyphenated `app-services` of published packs. The publisher's
    /// schema leaves the field free, so the manifest keeps the text as written and uses
    /// this list only to warn about a value nobody knows.
    AddonType {
        Logging => "logging",
        Monitoring => "monitoring",
        LoadBalancer => "load balancer",
        Authentication => "authentication",
        Ingress => "ingress",
        Security => "security",
        Ai => "ai",
        AppServices => "app services" | "app-services",
        Network => "network",
        Storage => "storage",
        Registry => "registry",
        Servicemesh => "servicemesh",
        SystemApp => "system app",
    }
}

schema_enum! {
    /// How a pack depends on another pack of the stack.
    DependencyType {
        Required => "required",
        Optional => "optional",
        NotSupported => "notSupported",
        Upgrade => "upgrade",
    }
}

schema_enum! {
    /// A machine resource a pack needs a minimum of.
    ResourceType {
        Cpu => "cpu",
        Memory => "memory",
        DiskSize => "diskSize",
    }
}

schema_enum! {
    /// Which nodes a resource minimum applies to. The docs' schema says `control-plane`;
    /// the publisher's schema and the docs' prose say `master`.
    ScheduleType {
        All => "all",
        ControlPlane => "control-plane" | "master",
        Worker => "worker",
    }
}
