"""README.txt of a clip package: how to verify it offline (zh/en), in the words of the
suite that signed it and of the service that made it."""

from __future__ import annotations

README = """evidock clip package / evidock 片段证据包

EN: This folder holds segments of a body-worn camera recording exactly as archived, with
the station's signed manifest. To verify it offline:
    evidock verify THIS_FOLDER --key STATION_PUBLIC_KEY.pem
Verification checks every segment's BLAKE3 digest against the signed manifest, each
segment's Merkle inclusion proof, the @SIG_EN@ (on the manifest, and on
clip.json: the range, segments, request and approval of this export), and that nothing
was added, removed or reordered. Standard BagIt tools also check the SHA-256/SHA-512 manifests.
@BAG_EN@Obtain the station's public key from the agency independently; the copy in keys/ only
proves consistency, not origin.

中文：本文件夹包含执法记录仪录像的分段文件（与归档内容逐字节一致）及工作站签名清单。
离线校验方法：
    evidock verify 本文件夹 --key 工作站公钥.pem
校验内容：每个分段的 BLAKE3 摘要与签名清单一致、默克尔包含证明、@SIG_ZH@（清单及
clip.json：本次导出的时间范围、分段、申请与审批记录），
以及文件未被增加、删除或调换顺序。标准 BagIt 工具亦可校验 SHA-256/SHA-512 清单。
@BAG_ZH@请通过独立渠道向执法机关索取工作站公钥；keys/ 中的副本仅能证明一致性，不能证明来源。
"""

#: The suite the station key signs with, in README.txt's words (keys.ALG / keys.SM2).
_README_SUITE = {
    "ed25519": ("Ed25519 signatures", "Ed25519 签名", "", ""),
    "sm2": ("SM2 signatures with SM3, GB/T 32918", "SM2/SM3 国密签名",
            "manifest-sm3.txt holds the SM3 digest (GB/T 32905) of every file, signed with "
            "SM2 in manifest-sm3.sig.json\n(crypto profile gm, named in bag-info.txt).\n",
            "manifest-sm3.txt 为各文件的 SM3 摘要（GB/T 32905），由 manifest-sm3.sig.json "
            "以 SM2 签名；国密配置 gm 见 bag-info.txt。\n"),
}


#: A package made at the center: clip.json is the center's statement, not the station's.
CENTER_NOTE = """
EN: This package was exported by the central archive from footage it read back from object
storage and proved. The manifest is signed by the station that recorded it; clip.json
(and the derivative) by the center. Verify with both keys:
    evidock verify THIS_FOLDER --key STATION_PUBLIC_KEY.pem --center-key CENTER_PUBLIC_KEY.pem
中文：本证据包由中心存档从对象存储回读并校验后导出。清单由录制工作站签名，clip.json
（及派生片段）由中心签名。校验时请同时提供两把公钥（--key 工作站公钥，--center-key 中心公钥）。
"""


def readme(alg: str, exported_by: str | None = None) -> str:
    """README.txt naming the suite of the key that signs the package, and the center
    when the center made it."""
    sig_en, sig_zh, bag_en, bag_zh = _README_SUITE[alg]
    text = (README.replace("@SIG_EN@", sig_en).replace("@SIG_ZH@", sig_zh)
            .replace("@BAG_EN@", bag_en).replace("@BAG_ZH@", bag_zh))
    return text + CENTER_NOTE if exported_by == "center" else text
