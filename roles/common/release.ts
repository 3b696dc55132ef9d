import { basename } from "node:path";
import {
  copy,
  file,
  getUrl,
  Type,
  unarchive,
  type HandlerRef,
  type Static,
  type Task,
} from "../../engine/index.js";
import { roleVarsError } from "./errors.js";

/** A release artifact pinned by its SHA-256: downloaded from `url`, or copied from a controller `path`. */
export const Release = Type.Object(
  {
    /** Defaults to the first x.y.z in the artifact's file name. */
    version: Type.Optional(Type.String({ minLength: 1, pattern: "^[0-9A-Za-z._-]+$" })),
    sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
    url: Type.Optional(Type.String({ pattern: "^https?://" })),
    path: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);
export type Release = Static<typeof Release>;

/** How one product's release is laid out and linked into /usr/local/bin. */
export interface ReleaseLayout {
  /** Folder name under /opt, e.g. "spire". */
  product: string;
  release: Release;
  /** Paths inside the unpacked release (after stripComponents) to link into /usr/local/bin. */
  binaries: string[];
  /** Leading path components to drop when unpacking (1 for "spire-1.14.1/bin/..."). */
  stripComponents: number;
  /** Handlers to notify when the linked version changes (an upgrade restarts the service). */
  notify?: HandlerRef[];
}

/**
 * Installs a pinned release the way an operator would: the tarball is fetched (or copied) to
 * /opt/<product>/ with its hash checked, unpacked into /opt/<product>/<version>, and the binaries
 * linked into /usr/local/bin, so an upgrade is a new folder plus a link swap.
 */
export function installRelease(layout: ReleaseLayout): Task[] {
  const { product, release } = layout;
  const version = releaseVersion(product, release);
  const root = `/opt/${product}`;
  const versionDir = `${root}/${version}`;
  const archive = `${root}/${artifactName(release)}`;
  const first = layout.binaries[0] ?? "";
  return [
    file({ name: `${product}: ${root} exists`, path: root, state: "directory", mode: "0755" }),
    fetchArtifact(product, release, archive),
    file({
      name: `${product}: ${versionDir} exists`,
      path: versionDir,
      state: "directory",
      mode: "0755",
    }),
    unarchive({
      name: `${product}: ${version} is unpacked`,
      src: archive,
      dest: versionDir,
      creates: `${versionDir}/${first}`,
      stripComponents: layout.stripComponents,
    }),
    ...layout.binaries.map((binary) =>
      file({
        name: `${product}: /usr/local/bin/${basename(binary)} links to ${version}`,
        path: `/usr/local/bin/${basename(binary)}`,
        state: "link",
        src: `${versionDir}/${binary}`,
        ...(layout.notify ? { notify: layout.notify } : {}),
      }),
    ),
  ];
}

/** The release's version: given, or read from the artifact's file name. */
export function releaseVersion(product: string, release: Release): string {
  const version = release.version ?? /\d+\.\d+\.\d+/.exec(artifactName(release))?.[0];
  if (!version)
    throw roleVarsError(
      product,
      `release ${artifactName(release)}: no version in the name; give "version"`,
    );
  return version;
}

/** The artifact's file name, from its URL or controller path. */
export function artifactName(release: Release): string {
  const source = release.url ?? release.path ?? "";
  return basename(new URL(source, "file:///").pathname);
}

function fetchArtifact(product: string, release: Release, dest: string): Task {
  if ((release.url === undefined) === (release.path === undefined)) {
    throw roleVarsError(
      product,
      `release ${artifactName(release)}: give exactly one of "url" and "path"`,
    );
  }
  const name = `${product}: ${artifactName(release)} is present with sha256 ${release.sha256.slice(0, 12)}`;
  if (release.url)
    return getUrl({ name, url: release.url, dest, sha256: release.sha256, mode: "0644" });
  return copy({ name, src: release.path ?? "", dest, sha256: release.sha256, mode: "0644" });
}
