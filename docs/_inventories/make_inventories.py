"""Write the offline intersphinx inventories: the names lensnet's documentation links to, with the addresses
of their pages in each project's documentation (used when the projects' own inventories cannot be fetched).

    python docs/_inventories/make_inventories.py
"""

import zlib
from pathlib import Path

#: project -> [(name, domain:role, page#anchor)]; "$" in the address stands for the name.
OBJECTS = {
    "python": [(n, "py:class", f"library/functions.html#{n}") for n in ("int", "float", "str", "bool")]
    + [(n, "py:class", f"library/stdtypes.html#{n}") for n in ("dict", "list", "tuple")]
    + [("pathlib.Path", "py:class", "library/pathlib.html#$"), ("os.PathLike", "py:class", "library/os.html#$")],
    "numpy": [("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#$")],
    "torch": [("torch.Tensor", "py:class", "tensors.html#$"),
              ("torch.nn.Module", "py:class", "generated/torch.nn.Module.html#$"),
              ("torch.device", "py:class", "tensor_attributes.html#$"),
              ("torch.dtype", "py:class", "tensor_attributes.html#$"),
              ("torch.Generator", "py:class", "generated/torch.Generator.html#$"),
              ("torch.utils.data.Dataset", "py:class", "data.html#$"),
              ("torch.utils.data.DataLoader", "py:class", "data.html#$")],
    "astropy": [(f"astropy.{n}", "py:class", f"api/astropy.{n}.html#$")
                for n in ("table.Table", "io.fits.Header", "io.fits.HDUList", "wcs.WCS", "coordinates.SkyCoord")],
    "lenstronomy": [("lenstronomy", "py:module", "index.html#module-$")],
}


def main() -> None:
    folder = Path(__file__).parent
    for project, objects in OBJECTS.items():
        body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in objects).encode()
        header = (f"# Sphinx inventory version 2\n# Project: {project}\n# Version: \n"
                  "# The remainder of this file is compressed using zlib.\n").encode()
        (folder / f"{project}.inv").write_bytes(header + zlib.compress(body))


if __name__ == "__main__":
    main()
