from setuptools import setup, find_packages

setup(
    name="darknet_py",
    version="0.1.0",
    description="A faithful Darknet (YOLOv2, YOLO9000, Darknet-19) engine in Python",
    packages=find_packages(exclude=["tests"]),
    package_data={"darknet_py": ["../kernels/*.cu", "../kernels/*.cuh"]},
    python_requires=">=3.9",
    install_requires=["numpy>=1.22", "pillow>=9", "tqdm", "numba>=0.60"],
    extras_require={
        "gpu": ["cupy-cuda13x"],   # the H200 machines have CUDA 13
        "wordtree": ["nltk"],
        "onnx": ["onnx", "onnxruntime"],
        "video": ["opencv-python-headless<5"],   # detector demo (video files, cameras)
        "test": ["pytest", "hypothesis", "onnx", "onnxruntime"],
    },
    entry_points={"console_scripts": ["darknet_py=darknet_py.__main__:main"]},
)
